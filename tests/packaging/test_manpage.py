#!/usr/bin/env python3
"""Holds the man page to `virtvaultd --help`: the same options, each with the
same argument name, and a VIRTVAULT_* variable named for each that takes one.

Usage: test_manpage.py VIRTVAULTD MANPAGE   (prints TAP)
"""
import re
import subprocess
import sys


def help_options(binary):
    """{'--listen': 'HOST:PORT', '--help': None, ...} from the --help text."""
    text = subprocess.run([binary, "--help"], check=True, capture_output=True,
                          text=True).stdout
    opts = {}
    for m in re.finditer(r"^\s+(--[a-z][a-z-]*)(?: ([A-Z][A-Z:_]*))?\s", text, re.M):
        opts[m.group(1)] = m.group(2)
    return opts


def unroff(s):
    return s.replace("\\-", "-").replace('"', "").strip()


def man_options(path):
    """The same map from the tagged paragraphs of the OPTIONS section."""
    lines = open(path, encoding="utf-8").read().splitlines()
    opts, section = {}, None
    for i, line in enumerate(lines):
        if line.startswith(".SH "):
            section = unroff(line[4:])
        elif section == "OPTIONS" and line == ".TP" and i + 1 < len(lines):
            tag = lines[i + 1]
            m = re.match(r"^\.BI? (\S+)(?: (.*))?$", tag)
            if not m:
                raise SystemExit(f"{path}:{i + 2}: cannot read option tag {tag!r}")
            name = unroff(m.group(1))
            arg = unroff(m.group(2)) if m.group(2) else None
            opts[name] = arg or None
    return opts


def main():
    binary, manpage = sys.argv[1], sys.argv[2]
    want, have = help_options(binary), man_options(manpage)
    man_text = unroff(open(manpage, encoding="utf-8").read())
    checks = []
    for name, arg in sorted(want.items()):
        checks.append((f"{name} from --help is in the man page", name in have))
        if name in have:
            checks.append((f"{name} takes {arg or 'no value'} in both",
                           have[name] == arg))
    for name in sorted(set(have) - set(want)):
        checks.append((f"{name} in the man page is an option of --help", False))
    checks.append(("--help lists options", len(want) >= 10))
    # The ENVIRONMENT section gives the rule; the examples must follow it.
    for var in re.findall(r"VIRTVAULT_[A-Z_]+", man_text):
        opt = "--" + var[len("VIRTVAULT_"):].lower().replace("_", "-")
        # --no-auth is the one flag with a variable (VIRTVAULT_NO_AUTH=1).
        checks.append((f"{var} names an option that takes a value",
                       want.get(opt) is not None or (opt == "--no-auth" and opt in want)))
    failed = 0
    print(f"1..{len(checks)}")
    for n, (title, ok) in enumerate(checks, 1):
        print(f"{'ok' if ok else 'not ok'} {n} - {title}")
        failed += not ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
