# meshrr images. Two targets, both buildable with no container registry:
#
#   agent  the static meshrr-agent binary on an empty base (FROM scratch);
#          `make images` builds the binary on the host first (bin/meshrr-agent)
#   bird   BIRD from Debian 13 on BASE: BIRD_PACKAGE bird2 (BIRD 2.17, the
#          image meshrr/bird) or bird3 (BIRD 3.1, meshrr/bird3). `make
#          images` builds each BASE locally with debootstrap
#          (tests/tools/make-base.sh, BIRD preinstalled); with a registry,
#          BASE=debian:trixie-slim installs BIRD_PACKAGE with apt.
#
#   DOCKER_BUILDKIT=0 docker build --target agent -t meshrr/agent:dev .
#   DOCKER_BUILDKIT=0 docker build --target bird --build-arg BASE=meshrr/base:trixie -t meshrr/bird:dev .
#   DOCKER_BUILDKIT=0 docker build --target bird --build-arg BASE=meshrr/base:trixie-bird3 --build-arg BIRD_PACKAGE=bird3 -t meshrr/bird3:dev .
ARG BASE=debian:trixie-slim

FROM scratch AS agent
COPY bin/meshrr-agent /meshrr-agent
# non-root; the chart also sets a read-only root filesystem and drops all capabilities
USER 65532:65532
ENTRYPOINT ["/meshrr-agent"]
CMD ["run"]

FROM ${BASE} AS bird
ARG BIRD_PACKAGE=bird2
RUN command -v bird >/dev/null 2>&1 || \
    (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$BIRD_PACKAGE" && rm -rf /var/lib/apt/lists/*)
# the BIRD of the base must be the one asked for (a bird2 base built as bird3 is refused)
RUN case "$BIRD_PACKAGE" in bird2) want=2 ;; bird3) want=3 ;; *) echo "BIRD_PACKAGE=$BIRD_PACKAGE: bird2 or bird3" >&2; exit 1 ;; esac; \
    bird --version 2>&1 | grep -q "^BIRD version $want\." || { echo "the base's BIRD is $(bird --version 2>&1), not $BIRD_PACKAGE" >&2; exit 1; }
# Debian's /etc/bird is 0750 bird:bird: readable by any user here
RUN mkdir -p /etc/bird/conf.d /run/bird /run/meshrr && rm -f /etc/bird/bird.conf && \
    chown -R root:root /etc/bird && chmod 0755 /etc/bird /etc/bird/conf.d
COPY agent/images/bird/entrypoint.sh /usr/local/bin/meshrr-bird
# non-root, the agent's user and group: BIRD needs no capability when the pod
# makes port 179 unprivileged (sysctl net.ipv4.ip_unprivileged_port_start=179,
# as the chart does); the chart runs it as root only for BFD (NET_ADMIN)
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/meshrr-bird"]
