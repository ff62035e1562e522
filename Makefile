# kvmhost.lifecycle: run as root on a Debian 12 machine, with or without systemd.
#   make setup  packages, .venv, host services (playbooks/host.yml), demo images; idempotent
#   make demo   setup, then boot and rebuild the demo instances (inventory/demo), printing the step timeline
#   make test   setup, then the whole suite
#   make docs   the collection's HTML documentation site in .build/docs/html (tools/docs)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
COLLECTION_LINK := .build/collections/ansible_collections/kvmhost/lifecycle
IMAGES_DIR ?= /var/lib/kvmhost/images

.PHONY: setup system-packages venv collection-link host images demo demo-clean test unit sanity lint docs integration molecule bench build clean

setup: system-packages venv collection-link host images

system-packages:
	@tools/install-system-packages

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	@touch $@

# ansible.cfg points collections_path at .build/collections: this link makes kvmhost.lifecycle the working tree.
collection-link:
	@mkdir -p $(dir $(COLLECTION_LINK))
	@test -L $(COLLECTION_LINK) || ln -sfn ../../../.. $(COLLECTION_LINK)

host: venv collection-link
	$(BIN)/ansible-playbook playbooks/host.yml

images:
	@tools/build-demo-images $(IMAGES_DIR)

demo: setup
	@tools/demo

demo-clean:
	@.venv/bin/ansible-playbook -i inventory/demo playbooks/delete.yml -e kvmhost_delete_uuids=all

test: setup
	@tools/run-tests all

unit: venv collection-link
	@tools/run-tests unit

sanity: venv
	@tools/run-tests sanity

lint: venv collection-link
	@tools/run-tests lint

integration: setup
	@tools/run-tests integration

molecule: setup
	@tools/run-tests molecule

# Boot, converge, rebuild and delete N = 1, 5, 10, 20 instances against shell scripts of the same steps; figures in
# .build/bench (bench.json, bench.svg, bench.md). BENCH_SIZES=1 make bench for a quick check.
bench: setup
	@tools/bench --sizes "$${BENCH_SIZES:-1,5,10,20}"

# The collection's HTML documentation (antsibull-docs and Sphinx, offline): open .build/docs/html/index.html.
# `tools/run-tests docs` lints the documentation and the changelog, builds the site and checks its pages.
docs: venv
	@tools/docs

build: venv
	$(BIN)/ansible-galaxy collection build --force --output-path .build/dist

clean:
	rm -rf .build tests/output
