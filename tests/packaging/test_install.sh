#!/bin/bash
# Installs virtvault as a Debian host would have it (`make install
# PREFIX=/usr DESTDIR=...`, which runs `meson install --destdir`) into a
# temporary folder and checks what landed there: the layout, the man page
# against --help, the example configuration, the systemd unit (through
# `systemd-analyze verify` and `security`), the sysusers file, and the staged
# daemon serving its web UI with the example tokens, within the system calls
# the unit allows.
#
# Usage: tests/packaging/test_install.sh      (needs make, meson, curl, strace,
# man and systemd-analyze from Debian's systemd package, which works without
# systemd running)
set -u -o pipefail

SRC=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d /tmp/virtvault-install.XXXXXX)
DEST=$TMP/dest
DAEMON_PID=
cleanup() {
    [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

passed=0 failed=0
ok()   { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { # check TITLE COMMAND...: passes when COMMAND succeeds
    local title=$1; shift
    if "$@" >"$TMP/out" 2>&1; then ok "$title"; else fail "$title"; sed 's/^/     | /' "$TMP/out"; fi
}

for need in make:make meson:meson ninja:ninja-build curl:curl strace:strace man:man-db \
        systemd-analyze:systemd python3:python3; do
    command -v "${need%%:*}" >/dev/null ||
        { echo "missing ${need%%:*}: apt-get install ${need#*:}"; exit 1; }
done

echo "# make install PREFIX=/usr DESTDIR=$DEST"
if ! make -C "$SRC" --no-print-directory install BUILD="$TMP/build" PREFIX=/usr \
        DESTDIR="$DEST" >"$TMP/install.log" 2>&1; then
    cat "$TMP/install.log"
    echo "make install failed"
    exit 1
fi

echo "# layout"
(cd "$DEST" && find . -mindepth 1 | sed 's|^\./||' | sort | sed 's/^/#   /')
expect() { # expect TEST PATH: TEST is -f, -d or -x
    if [ "$1" "$DEST/$2" ]; then ok "$2"; else fail "$2 missing"; fi
}
expect -x usr/sbin/virtvaultd
expect -d usr/share/virtvault/web
expect -f usr/share/virtvault/web/index.html
expect -f usr/share/virtvault/openapi.yaml
expect -f usr/share/man/man8/virtvaultd.8
expect -d etc/virtvault
expect -f etc/virtvault/tokens.example
expect -f etc/virtvault/virtvaultd.env
expect -d var/lib/virtvault
expect -f usr/lib/systemd/system/virtvaultd.service
expect -f usr/lib/sysusers.d/virtvault.conf
expect -x usr/bin/virtvault
expect -f usr/share/man/man1/virtvault.1
expect -f usr/share/bash-completion/completions/virtvault

BIN=$DEST/usr/sbin/virtvaultd
UNIT=$DEST/usr/lib/systemd/system/virtvaultd.service
VERSION=$(sed -n "s/^ *version : '\(.*\)',/\1/p" "$SRC/meson.build" | head -1)

echo "# contents"
check "web UI is the source's web/" diff -r "$SRC/web" "$DEST/usr/share/virtvault/web"
check "openapi.yaml is the source's" cmp "$SRC/openapi.yaml" "$DEST/usr/share/virtvault/openapi.yaml"
check "virtvaultd --version prints $VERSION" grep -qx "virtvaultd $VERSION" <("$BIN" --version)
check "virtvaultd looks for its web UI in /usr/share/virtvault/web" \
    grep -qa /usr/share/virtvault/web "$BIN"
check "man page matches --help" "$SRC/tests/packaging/test_manpage.py" "$BIN" \
    "$DEST/usr/share/man/man8/virtvaultd.8"
check "man page renders without warnings" \
    bash -c "! LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l '$DEST/usr/share/man/man8/virtvaultd.8' 2>&1 >/dev/null | grep ."
check "virtvault(1) renders without warnings" \
    bash -c "! LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l '$DEST/usr/share/man/man1/virtvault.1' 2>&1 >/dev/null | grep ."
check "the bash completion parses" bash -n "$DEST/usr/share/bash-completion/completions/virtvault"

# Every variable the defaults file offers, uncommented, is accepted as is.
env_vars=$(sed -n 's/^#\(VIRTVAULT_[A-Z_]*=.*\)$/\1/p' "$DEST/etc/virtvault/virtvaultd.env")
check "virtvaultd.env offers variables" test -n "$env_vars"
check "virtvaultd.env values are all accepted" env $env_vars "$BIN" --version

echo "# systemd unit"
check "ExecStart runs /usr/sbin/virtvaultd" grep -q '^ExecStart=/usr/sbin/virtvaultd ' "$UNIT"
check "EnvironmentFile is /etc/virtvault/virtvaultd.env" \
    grep -qx 'EnvironmentFile=-/etc/virtvault/virtvaultd.env' "$UNIT"
for want in '--db /var/lib/virtvault/virtvault.db' '--vault-dir /var/lib/virtvault/vault' \
        '--libvirt-uri qemu:///system' 'After=.*libvirtd.service' 'After=.*virtqemud.socket' \
        'Restart=on-failure' 'StateDirectory=virtvault' \
        'ProtectSystem=strict' 'ReadWritePaths=/var/lib/virtvault' 'ProtectHome=yes' \
        'PrivateTmp=yes' 'NoNewPrivileges=yes'; do
    check "unit has $want" grep -q -e "$want" "$UNIT"
done
# Wanting both kinds of libvirt daemon would start the one the host disabled.
check "unit wants no libvirt daemon" bash -c "! grep -E '^(Wants|Requires)=.*virt' '$UNIT'"
# systemd-analyze verify checks that ExecStart exists on this machine, so it
# reads a copy whose ExecStart names the staged binary; the man page named by
# Documentation= is looked up in the staged tree.
mkdir -p "$TMP/unit"
sed "s|^ExecStart=/usr/sbin/|ExecStart=$DEST/usr/sbin/|" "$UNIT" >"$TMP/unit/virtvaultd.service"
check "systemd-analyze verify" env MANPATH="$DEST/usr/share/man" \
    systemd-analyze verify "$TMP/unit/virtvaultd.service"
check "systemd-analyze security: exposure at most 2.0" \
    systemd-analyze security --offline=yes --threshold=20 "$TMP/unit/virtvaultd.service"
check "sysusers.d file is valid" systemd-sysusers --dry-run --root="$TMP/sysroot" \
    "$DEST/usr/lib/sysusers.d/virtvault.conf"

echo "# the staged daemon with the example tokens, under strace"
# As an unprivileged user, as under the unit: some libraries make other
# system calls as root (SQLite chowns its journal).
RUN=$TMP/run
mkdir -m 0777 "$RUN"
chmod 0755 "$TMP"
as_user=()
[ "$(id -u)" = 0 ] && as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
sed 's/^#\(sha256:\)/\1/' "$DEST/etc/virtvault/tokens.example" >"$RUN/tokens"
check "tokens.example holds example lines" grep -q '^sha256:.* viewer ' "$RUN/tokens"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${as_user[@]}" strace -f -qq -o "$RUN/strace.log" "$BIN" --listen "127.0.0.1:$port" \
    --token-file "$RUN/tokens" --db "$RUN/vv.db" --vault-dir "$RUN/vault" \
    --web-dir "$DEST/usr/share/virtvault/web" >"$TMP/daemon.log" 2>&1 &
TRACER_PID=$!
for _ in $(seq 50); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
done
DAEMON_PID=$(pgrep -P "$TRACER_PID" -x virtvaultd || true)
[ -n "$DAEMON_PID" ] || sed 's/^/     | /' "$TMP/daemon.log"
base=http://127.0.0.1:$port
check "daemon answers /healthz" curl -fsS "$base/healthz"
check "daemon serves the installed web UI" \
    cmp <(curl -fsS "$base/") "$DEST/usr/share/virtvault/web/index.html"
check "a request without a token is refused" \
    test "$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/version")" = 401
check "the example viewer token is accepted" \
    curl -fsS -H "Authorization: Bearer viewer-example" "$base/v1/version"
for path in /readyz /metrics /openapi.yaml /v1/domains /v1/domains/test /v1/no-such; do
    curl -s -o /dev/null -H "Authorization: Bearer admin-example" "$base$path"
done
stop_daemon() { kill "$DAEMON_PID" && wait "$TRACER_PID"; } # strace exits as the daemon did
check "SIGTERM stops it with exit 0" stop_daemon
DAEMON_PID=
check "the system calls it made are allowed by the unit's filter" \
    "$SRC/tests/packaging/check_syscalls.py" "$UNIT" "$RUN/strace.log"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
