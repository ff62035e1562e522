# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`ansible-galaxy collection build` gives a tarball that installs and works like the working tree."""

from __future__ import annotations

import os
import subprocess
import tarfile

from kvmhost_testlib import ROOT, VENV_BIN


def run(command, cwd, env):
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=300)


def test_built_collection_installs_and_documents_and_runs(tmp_path):
    empty_config = tmp_path / 'ansible.cfg'
    empty_config.write_text('[defaults]\n')
    env = dict(os.environ, ANSIBLE_CONFIG=str(empty_config), ANSIBLE_COLLECTIONS_PATH=str(tmp_path / 'collections'),
               ANSIBLE_NOCOLOR='1')
    built = run([os.path.join(VENV_BIN, 'ansible-galaxy'), 'collection', 'build', ROOT, '--output-path',
                 str(tmp_path)], str(tmp_path), env)
    assert built.returncode == 0, built.stderr
    (tarball,) = [name for name in os.listdir(str(tmp_path)) if name.endswith('.tar.gz')]
    assert tarball.startswith('kvmhost-lifecycle-')
    with tarfile.open(str(tmp_path / tarball)) as archive:
        names = archive.getnames()
    assert 'plugins/modules/instance_record.py' in names and 'roles/kvm_host/meta/argument_specs.yml' in names
    # What the collection promises to ship besides its content: the license, the changelog, tests and molecule.
    for shipped in ('LICENSE', 'README.md', 'meta/runtime.yml', 'changelogs/changelog.yaml', 'tests/unit',
                    'tests/integration', 'molecule/default/molecule.yml', 'docs/README.md'):
        assert shipped in names, shipped
    # galaxy.yml's build_ignore: the repository's development tooling and anything built or cached stay out.
    development_only = {'Makefile', 'tools', 'requirements.in', 'requirements.txt', 'pytest.ini', 'ansible.cfg',
                        'inventory', '.ansible-lint', '.ansible', '.ci', '.venv', '.build', '.cache', '.pytest_cache',
                        '.git', '.gitignore'}
    packed = sorted(name for name in names if name.split('/')[0] in development_only
                    or name.startswith('tests/output') or name.endswith('.tar.gz') or '/__pycache__' in name)
    assert not packed, packed
    with tarfile.open(str(tmp_path / tarball)) as archive:
        license_text = archive.extractfile('LICENSE').read().decode()
    with open(os.path.join(ROOT, 'LICENSE'), encoding='utf-8') as license_file:
        assert license_text == license_file.read()
    assert 'GNU GENERAL PUBLIC LICENSE' in license_text and 'Version 3, 29 June 2007' in license_text
    installed = run([os.path.join(VENV_BIN, 'ansible-galaxy'), 'collection', 'install', str(tmp_path / tarball),
                     '-p', str(tmp_path / 'collections')], str(tmp_path), env)
    assert installed.returncode == 0, installed.stderr
    # Outside the repository, with no ansible.cfg: only the installed copy can answer.
    doc = run([os.path.join(VENV_BIN, 'ansible-doc'), 'kvmhost.lifecycle.instance_record'], str(tmp_path), env)
    assert doc.returncode == 0, doc.stderr
    assert str(tmp_path / 'collections') in doc.stdout and 'host-local state store' in doc.stdout
    # Every playbook by its FQCN, from the installed copy (the roles it names resolve there too).
    for playbook in ('host', 'boot', 'rebuild', 'delete'):
        syntax = run([os.path.join(VENV_BIN, 'ansible-playbook'), '-i', 'localhost,', 'kvmhost.lifecycle.' + playbook,
                      '--syntax-check'], str(tmp_path), env)
        assert syntax.returncode == 0, (playbook, syntax.stdout + syntax.stderr)
        installed_playbook = tmp_path / 'collections' / 'ansible_collections' / 'kvmhost' / 'lifecycle' / 'playbooks'
        assert 'playbook: %s/%s.yml' % (installed_playbook, playbook) in syntax.stdout, (playbook, syntax.stdout)
