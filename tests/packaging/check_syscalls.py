#!/usr/bin/env python3
"""Holds the system calls the daemon made (an strace -f log) to the unit's
SystemCallFilter=, so that a feature needing a call the sandbox forbids fails
here rather than on a host.

Usage: check_syscalls.py UNIT STRACE_LOG
Prints one line per forbidden call and exits 1 if there are any.
"""
import re
import subprocess
import sys

# Calls the sandbox answers with EPERM (SystemCallErrorNumber=) that the
# caller handles: libnuma probes set_mempolicy when libvirt's library loads.
TOLERATED = {"set_mempolicy"}


def groups():
    """{'@system-service': {'@basic-io', 'read', ...}, ...} from systemd itself."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], check=True,
                         capture_output=True, text=True).stdout
    table, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = table.setdefault(line.split()[0], set())
        elif cur is not None and line.strip() and not line.lstrip().startswith("#"):
            cur.add(line.split()[0])
    return table


def expand(names, table):
    calls = set()
    for name in names:
        calls |= expand(table[name], table) if name.startswith("@") else {name}
    return calls


def main():
    unit, log = sys.argv[1], sys.argv[2]
    table = groups()
    allowed = None
    for line in open(unit, encoding="utf-8"):
        m = re.match(r"^SystemCallFilter=(~?)(.*)$", line.strip())
        if not m:
            continue
        calls = expand(m.group(2).split(), table)
        if m.group(1):
            allowed = (allowed if allowed is not None else set()) - calls
        else:
            allowed = (allowed or set()) | calls
    if allowed is None:
        print("the unit has no SystemCallFilter=")
        return 1
    used = set(re.findall(r"^\d+\s+([a-z0-9_]+)\(", open(log).read(), re.M))
    forbidden = sorted(used - allowed - TOLERATED)
    for name in forbidden:
        print(f"{name}: used by the daemon, forbidden by the unit")
    print(f"{len(used)} system calls used, {len(forbidden)} forbidden")
    return 1 if forbidden or not used else 0


if __name__ == "__main__":
    sys.exit(main())
