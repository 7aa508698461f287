"""The hypervisor sandbox, seen from the integration tests.

A thin layer over scripts/sandbox (see `scripts/sandbox help`), so that the tests and the script
share one way of starting libvirt, making test domains and changing their disks the way a guest
would. Uses the standard library only; run the tests with Debian's /usr/bin/python3.

Every function raises SandboxError when the script fails, with the script's message.
Sizes and offsets are ints (bytes) or strings the script understands ("8M").
"""

import contextlib
import os
import secrets
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "sandbox"
URI = "qemu:///system"
# A generous bound for one script call; starting libvirtd the first time takes ~10 s.
TIMEOUT = 600


class SandboxError(RuntimeError):
    """scripts/sandbox exited non-zero."""


def _run(*args, check=True):
    """Run scripts/sandbox with args; return the CompletedProcess (stdout as bytes)."""
    argv = [str(SCRIPT), *(str(a) for a in args)]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT)
    if check and proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip()
        raise SandboxError(f"scripts/sandbox {' '.join(argv[1:])} exited {proc.returncode}: {msg}")
    return proc


def up():
    """Make libvirt with the QEMU driver answer at URI (reusing a daemon that already does)."""
    _run("up")


def is_up():
    """True when libvirt answers at URI."""
    return _run("status", check=False).returncode == 0


def kvm_available():
    """True when new sandbox domains run under KVM, False when under TCG."""
    return _run("accel").stdout.decode().strip() == "kvm"


def unique_name(prefix="vvt-"):
    """A domain name no other test run uses: prefix plus 8 random hex digits."""
    return prefix + secrets.token_hex(4)


def domain_create(name, size="64M", disks=1, start=True):
    """Create (or reuse) sandbox domain name with disks vda, vdb, ... of size each."""
    args = ["domain-create", name, "--size", size, "--disks", disks]
    if not start:
        args.append("--no-start")
    _run(*args)


def domain_remove(name):
    """Destroy and undefine sandbox domain name and delete its disks; fine if it is gone."""
    _run("domain-remove", name)


def domains():
    """Names of all sandbox domains."""
    return _run("list").stdout.decode().split()


@contextlib.contextmanager
def domain(size="64M", disks=1, start=True, prefix="vvt-"):
    """A new sandbox domain with a unique name, removed again on leaving the block."""
    name = unique_name(prefix)
    domain_create(name, size=size, disks=disks, start=start)
    try:
        yield name
    finally:
        domain_remove(name)


def write(dom, offset, length, pattern, disk="vda"):
    """Write length bytes at offset of disk through the guest's own device, as a guest would.

    pattern is a byte value (int 0..255 or a string such as "0xcd"), "random", or bytes
    (repeated to fill length). The script reads the range back and fails if it does not hold
    what was written.
    """
    if isinstance(pattern, int):
        if not 0 <= pattern <= 255:
            raise ValueError(f"pattern byte {pattern} is not 0..255")
        _run("write", dom, offset, length, f"0x{pattern:02x}", disk)
    elif isinstance(pattern, (bytes, bytearray)):
        if not pattern:
            raise ValueError("pattern bytes are empty")
        with tempfile.NamedTemporaryFile(prefix="vv-pattern-") as f:
            f.write(pattern)
            f.flush()
            _run("write", dom, offset, length, f"file:{f.name}", disk)
    else:
        _run("write", dom, offset, length, pattern, disk)


def read(dom, offset, length, disk="vda"):
    """The guest-visible bytes [offset, offset+length) of disk of domain dom."""
    return _run("read", dom, offset, length, "-", disk).stdout


def checksum(dom, offset, length, disk="vda"):
    """The sha256 (hex) of the guest-visible bytes [offset, offset+length) of disk."""
    return _run("checksum", dom, offset, length, disk).stdout.decode().strip()


def state_dir():
    """The folder that holds the sandbox domains' disks (domains/NAME/vda.qcow2 ...)."""
    return Path(os.environ.get("VIRTVAULT_SANDBOX_DIR", "/var/lib/virtvault-sandbox"))
