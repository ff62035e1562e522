"""The demo guest images (tools/build-demo-images) boot under the real libvirtd and keep their promises.

Each test defines a minimal hand-written domain (software emulation, direct kernel boot, serial console logged to a
file), so that it depends on nothing of the collection but the images.
"""

import subprocess
import time
from xml.sax.saxutils import quoteattr

import pytest

libvirt = pytest.importorskip("libvirt", reason="libvirt-python is not installed")

BOOT_TIMEOUT = 90.0
SHUTDOWN_TIMEOUT = 30.0


def domain_xml(name, images, directory, disks, cmdline="console=ttyS0 no_timer_check"):
    """disks: list of (path, format); they become vda, vdb, ... in that order."""
    disk_xml = "".join(
        f"""
    <disk type='file' device='disk'>
      <driver name='qemu' type='{fmt}'/>
      <source file={quoteattr(str(path))}/>
      <target dev='vd{chr(ord("a") + i)}' bus='virtio'/>
    </disk>"""
        for i, (path, fmt) in enumerate(disks)
    )
    # append='on': libvirt truncates the log at every start otherwise; DemoConsole.mark() copes with both.
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>192</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>{images.kernel}</kernel>
    <initrd>{images.initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>{disk_xml}
    <serial type='file'>
      <source path={quoteattr(str(directory / "console.log"))} append='on'/>
      <target port='0'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def overlay(base, path):
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(path)], check=True)
    path.chmod(0o644)
    return path


def wait_state(dom, state, timeout):
    deadline = time.monotonic() + timeout
    while dom.state()[0] != state:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def start_and_boot(dom, console):
    console.mark()
    dom.create()
    return console.wait_boot(BOOT_TIMEOUT)


@pytest.fixture
def demo_guest(demo_images, libvirt_test_dir, libvirt_test_domains, demo_console):
    """Factory: a defined (not started) demo guest on an overlay of demo-guest-v1; returns (dom, console)."""

    def make(extra_disks=(), cmdline="console=ttyS0 no_timer_check", label="demo"):
        root = overlay(demo_images.image("demo-guest-v1"), libvirt_test_dir / "vda.qcow2")
        name = libvirt_test_domains.unique_name(label)
        xml = domain_xml(name, demo_images, libvirt_test_dir, [(root, "qcow2"), *extra_disks], cmdline)
        return libvirt_test_domains.define(xml), demo_console(libvirt_test_dir / "console.log")

    return make


def test_boot_graceful_shutdown_and_restart(demo_guest, demo_images):
    dom, console = demo_guest()

    lines = start_and_boot(dom, console)
    kernel = console.find(lines, r"kernel (\S+)")
    assert kernel, lines
    if demo_images.kernel_version:
        assert kernel.group(1) == demo_images.kernel_version
    assert "disk vda marker=demo-guest-v1 boots=1" in lines
    assert "acpi ready" in lines
    assert lines[-1] == "boot complete"

    dom.shutdown()
    assert wait_state(dom, libvirt.VIR_DOMAIN_SHUTOFF, SHUTDOWN_TIMEOUT), "no SHUTOFF after ACPI shutdown"
    assert "acpi power button, powering off" in console.lines()

    lines = start_and_boot(dom, console)
    assert console.offset > 0  # the log was appended to, not truncated
    assert "disk vda marker=demo-guest-v1 boots=2" in lines


def test_noacpi_guest_ignores_shutdown_until_destroyed(demo_guest):
    dom, console = demo_guest(cmdline="console=ttyS0 no_timer_check kvmhost.noacpi=1", label="noacpi")

    lines = start_and_boot(dom, console)
    assert "acpi ignored" in lines
    assert "acpi ready" not in lines

    dom.shutdown()
    assert not wait_state(dom, libvirt.VIR_DOMAIN_SHUTOFF, 5.0), "the noacpi guest obeyed an ACPI shutdown"
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING

    dom.destroy()
    assert wait_state(dom, libvirt.VIR_DOMAIN_SHUTOFF, 10.0)


def test_raw_disk_counts_boots(demo_guest, libvirt_test_dir):
    data = libvirt_test_dir / "vdb.raw"
    with open(data, "wb") as f:
        f.truncate(16 * 1024 * 1024)  # sparse, all zero: "unformatted"
    data.chmod(0o644)
    dom, console = demo_guest(extra_disks=[(data, "raw")], label="rawdisk")

    lines = start_and_boot(dom, console)
    assert "disk vda marker=demo-guest-v1 boots=1" in lines
    assert "disk vdb unformatted" in lines

    # A hard stop: the guest has flushed its writes before it printed them.
    dom.destroy()
    assert wait_state(dom, libvirt.VIR_DOMAIN_SHUTOFF, 10.0)
    with open(data, "rb") as f:
        assert f.read(26) == b"KVMHOST-COUNTER\nboots=1\n\0\0"

    lines = start_and_boot(dom, console)
    assert "disk vda marker=demo-guest-v1 boots=2" in lines
    assert "disk vdb counter boots=2" in lines
