# -*- coding: utf-8 -*-
# Copyright (c) kvmhost.lifecycle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The execution environment: `ansible-builder create` on execution-environment.yml gives a complete build context.

No registry is reachable here, so the image is not built. What can be done offline is: write the build context
(Containerfile and _build/), and then do by hand what the image build's galaxy and builder stages do with it:
install the collection from _build/requirements.yml, and run the context's own introspect script over the
installed collection, which gives the Python and system requirements the builder stage would install. Seconds,
no daemon.

The EE file is copied into a temporary directory beside the tarball it names (.build/dist/ relative to it, as
`make build` writes it in the repository), so the test writes nothing into the working tree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile

import pytest
import yaml

from kvmhost_testlib import ROOT, VENV_BIN

EE_FILE = os.path.join(ROOT, 'execution-environment.yml')


def run(command, cwd, env=None):
    process = subprocess.run(command, cwd=str(cwd), env=env, capture_output=True, text=True, check=False,
                             timeout=120)
    assert process.returncode == 0, (command, process.stdout + process.stderr)
    return process.stdout + process.stderr


def galaxy_version():
    with open(os.path.join(ROOT, 'galaxy.yml')) as handle:
        return yaml.safe_load(handle)['version']


def venv_pins():
    """{distribution name: version} of requirements.txt, the pins of the repository's .venv."""
    pins = {}
    with open(os.path.join(ROOT, 'requirements.txt')) as handle:
        for line in handle:
            match = re.match(r'^([A-Za-z0-9_.-]+)==([^\s;#]+)', line)
            if match:
                pins[match.group(1).lower()] = match.group(2)
    return pins


def requirement_lines(text):
    """The requirement lines of a pip or bindep file, without comments and blank lines."""
    return [line.split('#', 1)[0].strip() for line in text.splitlines() if line.split('#', 1)[0].strip()]


@pytest.fixture(scope='module')
def definition():
    with open(EE_FILE) as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope='module')
def build_context(tmp_path_factory, definition):  # pylint: disable=redefined-outer-name
    """(context directory, output of ansible-builder create) for the repository's EE file and a fresh tarball."""
    base = tmp_path_factory.mktemp('ee')
    source = base / 'source'
    (source / '.build' / 'dist').mkdir(parents=True)
    shutil.copy(EE_FILE, str(source / 'execution-environment.yml'))
    run([os.path.join(VENV_BIN, 'ansible-galaxy'), 'collection', 'build', ROOT, '--output-path',
         str(source / '.build' / 'dist')], base)
    context = base / 'context'
    output = run([os.path.join(VENV_BIN, 'ansible-builder'), 'create', '--file',
                  str(source / 'execution-environment.yml'), '--context', str(context),
                  '--output-filename', 'Containerfile'], base)
    return context, output


def test_definition_is_version_3_with_the_venv_pins_and_this_version_of_the_collection(definition):  # pylint: disable=redefined-outer-name
    assert definition['version'] == 3
    assert definition['images']['base_image']['name']
    pins = venv_pins()
    dependencies = definition['dependencies']
    assert dependencies['ansible_core']['package_pip'] == 'ansible-core==' + pins['ansible-core']
    assert dependencies['ansible_runner']['package_pip'] == 'ansible-runner==' + pins['ansible-runner']
    tarball = 'kvmhost-lifecycle-%s.tar.gz' % galaxy_version()
    assert [entry['src'] for entry in definition['additional_build_files']] == ['.build/dist/' + tarball]
    assert dependencies['galaxy']['collections'] == [{'name': '/build/collections/' + tarball, 'type': 'file'}]


def test_create_writes_a_containerfile_from_the_base_image_that_installs_the_collection(build_context, definition):  # pylint: disable=redefined-outer-name
    context, output = build_context
    assert 'Complete!' in output
    assert 'No matches' not in output and 'does not exist' not in output, output  # every file it names was found
    containerfile = (context / 'Containerfile').read_text()
    assert 'ARG EE_BASE_IMAGE="%s"' % definition['images']['base_image']['name'] in containerfile
    assert 'FROM $EE_BASE_IMAGE AS base' in containerfile
    pins = venv_pins()
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core==%s ansible-runner==%s"' % (
        pins['ansible-core'], pins['ansible-runner']) in containerfile
    assert 'ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml' in containerfile
    assert 'introspect.py introspect' in containerfile and 'RUN /output/scripts/assemble' in containerfile


def test_build_context_holds_the_collection_tarball_with_its_ee_requirements(build_context):
    context, dummy = build_context
    tarball = context / '_build' / 'collections' / ('kvmhost-lifecycle-%s.tar.gz' % galaxy_version())
    assert tarball.is_file()
    with tarfile.open(str(tarball)) as archive:
        names = set(archive.getnames())
        meta = yaml.safe_load(archive.extractfile('meta/execution-environment.yml'))
        python = archive.extractfile(meta['dependencies']['python']).read().decode()
        system = archive.extractfile(meta['dependencies']['system']).read().decode()
    assert {'plugins/inventory/instances.py', 'playbooks/boot.yml', 'meta/runtime.yml'} <= names
    assert set(requirement_lines(python)) == {'libvirt-python'}
    assert 'libvirt-devel [compile platform:rpm]' in requirement_lines(system)
    assert 'libvirt-dev [compile platform:dpkg]' in requirement_lines(system)


def test_galaxy_and_builder_stages_install_the_collection_and_find_its_requirements(build_context, tmp_path):
    """The galaxy stage's `ansible-galaxy collection install -r requirements.yml` (its /build being the context's
    _build here), then the builder stage's introspect over what it installed."""
    context, dummy = build_context
    build = context / '_build'
    requirements = yaml.safe_load((build / 'requirements.yml').read_text())
    for entry in requirements['collections']:
        entry['name'] = entry['name'].replace('/build/', str(build) + '/', 1)
    local_requirements = tmp_path / 'requirements.yml'
    local_requirements.write_text(yaml.safe_dump(requirements))
    collections = tmp_path / 'collections'
    empty_config = tmp_path / 'ansible.cfg'
    empty_config.write_text('[defaults]\n')
    env = dict(os.environ, ANSIBLE_GALAXY_DISABLE_GPG_VERIFY='1', ANSIBLE_CONFIG=str(empty_config))
    run([os.path.join(VENV_BIN, 'ansible-galaxy'), 'collection', 'install', '-r', str(local_requirements),
         '--collections-path', str(collections), '--offline'], tmp_path, env)
    installed = collections / 'ansible_collections' / 'kvmhost' / 'lifecycle'
    assert (installed / 'MANIFEST.json').is_file()

    run([os.path.join(VENV_BIN, 'python'), str(build / 'scripts' / 'introspect.py'), 'introspect', str(collections),
         '--write-pip', str(tmp_path / 'pip.txt'), '--write-bindep', str(tmp_path / 'bindep.txt')], build)
    pip = requirement_lines((tmp_path / 'pip.txt').read_text())
    bindep = requirement_lines((tmp_path / 'bindep.txt').read_text())
    assert 'libvirt-python' in pip and 'lxml' not in pip
    for package in ('libvirt-libs [platform:rpm]', 'libvirt0 [platform:dpkg]', 'gcc [compile]',
                    'libvirt-devel [compile platform:rpm]', 'python3-devel [compile platform:rpm]',
                    'openssh-clients [platform:rpm]', 'openssh-client [platform:dpkg]'):
        assert package in bindep, (package, bindep)
    assert '# from collection kvmhost.lifecycle' in (tmp_path / 'pip.txt').read_text()


def test_introspect_of_the_working_tree_finds_the_collections_requirements(tmp_path):
    """ansible-builder introspect, as a collection author runs it, over .build/collections (make setup links the
    working tree there)."""
    collections = os.path.join(ROOT, '.build', 'collections')
    if not os.path.isdir(os.path.join(collections, 'ansible_collections', 'kvmhost', 'lifecycle')):
        pytest.skip('no .build/collections link: run make setup')
    output = run([os.path.join(VENV_BIN, 'ansible-builder'), 'introspect', collections, '--write-pip',
                  str(tmp_path / 'pip.txt'), '--write-bindep', str(tmp_path / 'bindep.txt')], ROOT)
    report = yaml.safe_load(output[output.index('---'):].split('\n\n')[0])
    assert 'libvirt-python  # from collection kvmhost.lifecycle' in report['python']
    assert 'libvirt-dev [compile platform:dpkg]  # from collection kvmhost.lifecycle' in report['system']
    assert 'libvirt-python' in set(requirement_lines((tmp_path / 'pip.txt').read_text()))
    assert 'openssh-client [platform:dpkg]' in requirement_lines((tmp_path / 'bindep.txt').read_text())
