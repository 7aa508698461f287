"""The sandbox helper does what the other integration tests rely on.

Run with Debian's python: /usr/bin/python3 -m pytest tests/integration/test_sandbox.py
"""

import hashlib
import os

import pytest

import sandbox

MiB = 1 << 20


@pytest.fixture(scope="module")
def dom():
    """One running two-disk domain for the tests of this module, removed at the end."""
    sandbox.up()
    with sandbox.domain(size="64M", disks=2) as name:
        yield name


def test_up_is_idempotent():
    sandbox.up()
    sandbox.up()
    assert sandbox.is_up()


def test_kvm_available_matches_dev_kvm():
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        assert sandbox.kvm_available() is False
    else:
        assert isinstance(sandbox.kvm_available(), bool)


def test_pattern_written_through_guest_reads_back(dom):
    sandbox.write(dom, 8 * MiB, 2 * MiB, 0xCD)

    assert sandbox.read(dom, 8 * MiB, 2 * MiB) == b"\xcd" * (2 * MiB)
    # Nothing around the range changed, and the other disk saw nothing.
    assert sandbox.read(dom, 8 * MiB - 4096, 4096) == bytes(4096)
    assert sandbox.read(dom, 10 * MiB, 4096) == bytes(4096)
    assert sandbox.read(dom, 8 * MiB, 2 * MiB, disk="vdb") == bytes(2 * MiB)


def test_exact_bytes_at_unaligned_offset_on_second_disk(dom):
    payload = os.urandom(300_001)

    sandbox.write(dom, 123_457, len(payload), payload, disk="vdb")

    assert sandbox.read(dom, 123_457, len(payload), disk="vdb") == payload


def test_random_data_and_checksum(dom):
    sandbox.write(dom, 32 * MiB, MiB, "random")

    data = sandbox.read(dom, 32 * MiB, MiB)
    assert data != bytes(MiB)
    assert sandbox.checksum(dom, 32 * MiB, MiB) == hashlib.sha256(data).hexdigest()


def test_write_beyond_end_is_refused(dom):
    with pytest.raises(sandbox.SandboxError, match="beyond the end"):
        sandbox.write(dom, 63 * MiB, 2 * MiB, 0x01)


def test_create_is_idempotent_and_remove_cleans_up():
    sandbox.up()
    name = sandbox.unique_name()
    try:
        sandbox.domain_create(name, size="16M", start=False)
        sandbox.domain_create(name, size="16M", start=False)
        assert name in sandbox.domains()
        assert (sandbox.state_dir() / "domains" / name / "vda.qcow2").is_file()
    finally:
        sandbox.domain_remove(name)

    assert name not in sandbox.domains()
    assert not (sandbox.state_dir() / "domains" / name).exists()
