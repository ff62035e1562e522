"""Shared fixtures of the integration tests: they run as root against the real libvirtd (qemu:///system).

Demo guest fixtures (tools/build-demo-images builds the images):
  libvirt_conn        session libvirt connection; skips when libvirt-python or libvirtd is missing
  demo_images         DemoImages of $KVMHOST_IMAGES (default /var/lib/kvmhost/images); skips when not built
  libvirt_test_dir    per-test directory under $KVMHOST_TEST_TMP (default /var/lib/kvmhost/test-tmp) that QEMU
                      (user libvirt-qemu) can traverse; removed afterwards
  libvirt_module_test_dir the same, shared by the tests of one module
  libvirt_test_domains LibvirtTestDomains: unique_name(label) ("kvmhost-test-<label>-<hex>"), define(xml) ->
                      virDomain; every domain defined is destroyed and undefined afterwards, even on failure
  demo_console        the DemoConsole class: DemoConsole(path) reads a demo guest's serial log ("kvmhost-demo: ..."
                      lines, see tools/build-demo-images)
"""

import json
import os
import pathlib
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from kvmhost_testlib import run_module

LIBVIRT_URI = os.environ.get("KVMHOST_LIBVIRT_URI", "qemu:///system")
DEMO_IMAGES_DIR = pathlib.Path(os.environ.get("KVMHOST_IMAGES", "/var/lib/kvmhost/images"))
TEST_TMP_ROOT = pathlib.Path(os.environ.get("KVMHOST_TEST_TMP", "/var/lib/kvmhost/test-tmp"))
TEST_DOMAIN_PREFIX = "kvmhost-test-"


class DemoImages:
    """Paths of the demo kernel, ramdisk and root images, plus the manifest written with them."""

    def __init__(self, directory):
        self.dir = pathlib.Path(directory)
        self.kernel = self.dir / "demo-vmlinuz"
        self.initrd = self.dir / "demo-initrd.gz"
        manifest = self.dir / "manifest.json"
        self.manifest = json.loads(manifest.read_text()) if manifest.exists() else {}

    def image(self, image_id):
        return self.dir / f"{image_id}.qcow2"

    @property
    def kernel_version(self):
        return self.manifest.get("kernel", {}).get("version")

    def missing(self):
        wanted = [self.kernel, self.initrd, self.image("demo-guest-v1"), self.image("demo-guest-v2")]
        return [str(p) for p in wanted if not p.is_file()]


class DemoConsole:
    """The serial log of a demo guest. Call mark() before a start; wait_for() then reads what came after it.

    The domain should log with <log file=... append='on'/> (or <serial type='file'> with append='on'): libvirt
    truncates the file at every start otherwise. Both work, since mark() falls back to 0 when the file shrank.
    """

    PREFIX = "kvmhost-demo: "

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.offset = 0

    def _size(self):
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def mark(self):
        self.offset = self._size()
        return self.offset

    def text(self):
        """Everything logged since mark() (the whole file if it was truncated since)."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return ""
        if len(data) >= self.offset:
            data = data[self.offset:]
        return data.decode("utf-8", errors="replace").replace("\r", "")

    def lines(self):
        """The kvmhost-demo lines since mark(), without the prefix."""
        return [line[len(self.PREFIX):].strip() for line in self.text().split("\n") if line.startswith(self.PREFIX)]

    def wait_for(self, line, timeout=90.0, interval=0.1):
        """Wait until the kvmhost-demo line `line` (exact, without prefix) appears; return all lines so far."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.lines()
            if line in lines:
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"no '{self.PREFIX}{line}' in {self.path} after {timeout} s; log tail:\n"
                                     + self.text()[-3000:])
            time.sleep(interval)

    def wait_boot(self, timeout=90.0):
        return self.wait_for("boot complete", timeout)

    @staticmethod
    def find(lines, pattern):
        """The first line fully matching the regex, as a match object (None if none)."""
        for line in lines:
            m = re.fullmatch(pattern, line)
            if m:
                return m
        return None


class SessionConnection:
    """The session's libvirt connection (a virConnect's methods), opened again by reconnect() after a test
    restarted libvirtd: a connection to the old daemon is dead."""

    def __init__(self, libvirt, uri):
        self._libvirt, self._uri = libvirt, uri
        self._conn = libvirt.open(uri)

    def reconnect(self):
        try:
            self._conn.close()
        except self._libvirt.libvirtError:
            pass
        self._conn = self._libvirt.open(self._uri)

    def close(self):
        self._conn.close()

    def __getattr__(self, name):
        return getattr(self._conn, name)


@pytest.fixture(scope="session")
def libvirt_conn():
    libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed")
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors are raised anyway; keep stderr quiet
    try:
        conn = SessionConnection(libvirt, LIBVIRT_URI)
    except libvirt.libvirtError as e:
        pytest.skip(f"libvirtd is not reachable at {LIBVIRT_URI}: {e}")
    yield conn
    try:
        conn.close()
    except libvirt.libvirtError:
        pass


@pytest.fixture(scope="session")
def demo_images():
    images = DemoImages(DEMO_IMAGES_DIR)
    missing = images.missing()
    if missing:
        pytest.skip(f"demo images missing ({', '.join(missing)}): run tools/build-demo-images {DEMO_IMAGES_DIR}")
    return images


def _new_test_dir(prefix="t-"):
    try:
        TEST_TMP_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
        path = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=TEST_TMP_ROOT))
        path.chmod(0o755)
    except PermissionError as e:
        pytest.skip(f"cannot create a test directory under {TEST_TMP_ROOT} (run as root): {e}")
    return path


@pytest.fixture
def libvirt_test_dir():
    """A fresh directory QEMU (libvirt-qemu) can reach: mode 0755 under TEST_TMP_ROOT, removed afterwards."""
    path = _new_test_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def libvirt_module_test_dir():
    """As libvirt_test_dir, shared by the tests of one module (for guests booted once and used by several tests).

    Module-scoped fixtures that put guests in it should depend on it, so that they are cleaned up first.
    """
    path = _new_test_dir("m-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def tgt_available():
    """tgtadm and libiscsi's tools installed, and the host's tgtd answering (the kvm_host role starts it)."""
    if shutil.which('tgtadm') is None or shutil.which('iscsi-inq') is None:
        pytest.skip('tgt or libiscsi-bin is not installed')
    if subprocess.run(['tgtadm', '--lld', 'iscsi', '--op', 'show', '--mode', 'target'],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip('tgtd is not running')


@pytest.fixture
def iscsi_export(tgt_available, libvirt_test_dir):
    """An iscsi_target spec (one 16 MiB LUN, CHAP, ACL 127.0.0.1) under a test directory, its persisted
    configuration there too (not /etc/tgt/conf.d); the test exports it; removed afterwards (forced)."""
    tag = secrets.token_hex(4)
    volume_dir = libvirt_test_dir / 'volumes'
    volume_dir.mkdir()
    args = dict(iqn='iqn.2026-11.test.kvmhost:%s' % tag, volume_dir=str(volume_dir),
                config_dir=str(libvirt_test_dir), initiator_addresses=['127.0.0.1'],
                luns=[dict(lun=1, path=str(volume_dir / 'vol.img'), size='16M')],
                chap_username='kvmhost-%s' % tag, chap_password=secrets.token_hex(6))
    yield args
    run_module('iscsi_target', dict(args, state='absent', force=True))


class LibvirtTestDomains:
    """Domains defined by one test; cleanup() destroys and undefines them all."""

    def __init__(self, conn):
        self.conn = conn
        self.defined = []

    @staticmethod
    def unique_name(label="guest"):
        return f"{TEST_DOMAIN_PREFIX}{label}-{uuid.uuid4().hex[:8]}"

    def define(self, xml):
        dom = self.conn.defineXML(xml)
        self.defined.append(dom)
        return dom

    def cleanup(self):
        import libvirt  # pylint: disable=import-outside-toplevel

        flags = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                 | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        for dom in reversed(self.defined):
            try:
                if dom.isActive():
                    dom.destroy()
            except libvirt.libvirtError:
                pass
            try:
                dom.undefineFlags(flags)
            except libvirt.libvirtError:
                pass
        self.defined.clear()


@pytest.fixture
def libvirt_test_domains(libvirt_conn, libvirt_test_dir):  # pylint: disable=redefined-outer-name,unused-argument
    """Depends on libvirt_test_dir so that the domains are gone before their files are removed."""
    domains = LibvirtTestDomains(libvirt_conn)
    yield domains
    domains.cleanup()


@pytest.fixture(scope="session")
def demo_console():
    return DemoConsole
