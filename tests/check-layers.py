#!/usr/bin/env python3
"""
The include rules of the layers, as a TAP test (one test point per rule).

    util/    includes util/ only                    (the bottom)
    conf/    the records the layers pass: util/
    db/ virt/ vault/ net/   their own folder, conf/ and util/
    core/    headers, private ones (*_priv.h) too: core/, conf/, util/ (never
             db/, virt/, vault/ or net/); sources may also use db/, virt/,
             vault/ and net/ (net/ is the outbound HTTP client: libcurl)
    api/     api/, core/, conf/, util/
    server/  server/, api/, conf/, util/; server/main.c, the composition
             root, may also include core/ to wire the service together

"config.h" (the build's configuration) may be included anywhere. An include
is resolved as the compiler does: "dir/x.h" from the source root, "x.h" from
the including file's folder, else from util/. Every include that crosses a
layer the wrong way is printed as a diagnostic under its rule.

Usage: check-layers.py [SOURCE_ROOT]
"""
import os
import re
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), '..'))
LAYERS = ('util', 'conf', 'db', 'virt', 'vault', 'net', 'core', 'api', 'server')
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')

LOW = {'util', 'conf'}
RULES = [
    ('util/ includes only util/', lambda f: f.startswith('util/'), {'util'}),
    ('conf/ includes only conf/ and util/', lambda f: f.startswith('conf/'), LOW),
    ('db/ includes only db/, conf/ and util/', lambda f: f.startswith('db/'), LOW | {'db'}),
    ('virt/ includes only virt/, conf/ and util/', lambda f: f.startswith('virt/'),
     LOW | {'virt'}),
    ('vault/ includes only vault/, conf/ and util/', lambda f: f.startswith('vault/'),
     LOW | {'vault'}),
    ('net/ includes only net/, conf/ and util/', lambda f: f.startswith('net/'),
     LOW | {'net'}),
    ('core/*.h include no db/, virt/, vault/ or net/ header',
     lambda f: f.startswith('core/') and f.endswith('.h'),
     LOW | {'core'}),
    ('core/*.c include only core/, conf/, util/, db/, virt/, vault/ and net/',
     lambda f: f.startswith('core/') and f.endswith('.c'),
     LOW | {'core', 'db', 'virt', 'vault', 'net'}),
    ('api/ includes only api/, core/, conf/ and util/', lambda f: f.startswith('api/'),
     LOW | {'api', 'core'}),
    ('server/ includes only server/, api/, conf/ and util/ (main.c may wire core/)',
     lambda f: f.startswith('server/') and f != 'server/main.c', LOW | {'server', 'api'}),
    ('server/main.c includes no db/, virt/, vault/ or net/ header',
     lambda f: f == 'server/main.c', LOW | {'server', 'api', 'core'}),
]


def sources():
    for layer in LAYERS:
        folder = os.path.join(ROOT, layer)
        for name in sorted(os.listdir(folder)):
            if name.endswith(('.c', '.h')):
                yield f'{layer}/{name}'


def layer_of(src, inc):
    """The layer an include of src reaches, or None for the build's config.h."""
    if inc == 'config.h':
        return None
    if '/' in inc:
        return inc.split('/', 1)[0]
    here = os.path.dirname(src)
    if os.path.exists(os.path.join(ROOT, here, inc)):
        return here
    if os.path.exists(os.path.join(ROOT, 'util', inc)):
        return 'util'
    return '?'


def main():
    files = list(sources())
    includes = {}
    for f in files:
        with open(os.path.join(ROOT, f), encoding='utf-8') as fh:
            includes[f] = [(n, m.group(1)) for n, line in enumerate(fh, 1)
                           if (m := INCLUDE.match(line))]
    failed = 0
    for i, (name, applies, allowed) in enumerate(RULES, 1):
        bad = []
        for f in files:
            if not applies(f):
                continue
            for line, inc in includes[f]:
                layer = layer_of(f, inc)
                if layer is not None and layer not in allowed:
                    bad.append(f'{f}:{line}: #include "{inc}" reaches {layer}/')
                elif (layer is not None and layer != f.split('/', 1)[0] and
                      inc.endswith('_priv.h')):
                    bad.append(f'{f}:{line}: #include "{inc}" is private to {layer}/')
        print(f'{"not ok" if bad else "ok"} {i} - {name}')
        for b in bad:
            print(f'#   {b}')
        failed += bool(bad)
    print(f'1..{len(RULES)}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
