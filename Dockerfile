# virtvaultd as a container image, built in two stages on Debian 12.
#
#   docker build -t virtvault .
#   podman build --build-arg BASE=localhost/debian:bookworm-slim -t virtvault .
#
# BASE is the Debian 12 image both stages start from; `make test-container`
# builds here from a base made locally with debootstrap. How to run the image
# against the host's libvirt: README.md, section "Container".
ARG BASE=debian:bookworm-slim

# Both stages install from the one package list, scripts/packages.txt: its
# section [build] here, [run] in the runtime stage. The list is copied before
# the sources, so that these layers stay cached until it changes.
FROM ${BASE} AS build
ENV DEBIAN_FRONTEND=noninteractive
COPY scripts/packages scripts/packages.txt /tmp/packages/
RUN pkgs=$(/tmp/packages/packages build) \
 && apt-get update \
 && apt-get install -y --no-install-recommends $pkgs \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The host install's layout, less what only systemd reads. No file access inside backups
# (libguestfs would bring QEMU and a kernel into the image): those routes answer 501.
RUN meson setup /build --prefix=/usr -Dguestfs=disabled \
 && ninja -C /build virtvaultd cli/virtvault \
 && meson install -C /build --destdir /out --strip --no-rebuild \
 && install -m 0755 packaging/container-entrypoint /out/usr/sbin/virtvaultd-entrypoint \
 && rm -r /out/usr/lib/systemd /out/usr/lib/sysusers.d /out/etc/virtvault/virtvaultd.env

FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive
COPY scripts/packages scripts/packages.txt /tmp/packages/
RUN pkgs=$(/tmp/packages/packages run) \
 && apt-get update \
 && apt-get install -y --no-install-recommends $pkgs \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log /tmp/packages
# A fixed id, so that the host can give it access to the libvirt socket and
# own the state volume (README.md, "Container").
RUN groupadd --gid 10001 virtvault \
 && useradd --uid 10001 --gid virtvault --home-dir /var/lib/virtvault \
        --no-create-home --shell /usr/sbin/nologin virtvault
COPY --from=build /out/ /
RUN install -d -o virtvault -g virtvault -m 0755 /var/lib/virtvault

ENV VIRTVAULT_LISTEN=0.0.0.0:8080 \
    VIRTVAULT_LIBVIRT_URI=qemu:///system \
    VIRTVAULT_DB=/var/lib/virtvault/virtvault.db \
    VIRTVAULT_VAULT_DIR=/var/lib/virtvault/vault \
    VIRTVAULT_TOKEN_FILE=/etc/virtvault/tokens \
    HOME=/var/lib/virtvault
USER virtvault
WORKDIR /var/lib/virtvault
VOLUME ["/var/lib/virtvault"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD curl -fsSk -o /dev/null "http${VIRTVAULT_TLS_CERT:+s}://127.0.0.1:${VIRTVAULT_LISTEN##*:}/healthz" || exit 1
ENTRYPOINT ["/usr/sbin/virtvaultd-entrypoint"]
