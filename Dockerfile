# meshrr images. Two targets, both buildable with no container registry:
#
#   agent  the static meshrr-agent binary on an empty base (FROM scratch);
#          `make images` builds the binary on the host first (bin/meshrr-agent)
#   bird   BIRD 2 from Debian 13 on BASE. `make images` builds BASE locally
#          with debootstrap (tests/tools/make-base.sh, BIRD preinstalled);
#          with a registry, BASE=debian:trixie-slim installs bird2 with apt.
#
#   DOCKER_BUILDKIT=0 docker build --target agent -t meshrr/agent:dev .
#   DOCKER_BUILDKIT=0 docker build --target bird --build-arg BASE=meshrr/base:trixie -t meshrr/bird:dev .
ARG BASE=debian:trixie-slim

FROM scratch AS agent
COPY bin/meshrr-agent /meshrr-agent
# non-root; the chart also sets a read-only root filesystem and drops all capabilities
USER 65532:65532
ENTRYPOINT ["/meshrr-agent"]
CMD ["run"]

FROM ${BASE} AS bird
RUN command -v bird >/dev/null 2>&1 || \
    (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bird2 && rm -rf /var/lib/apt/lists/*)
# Debian's /etc/bird is 0750 bird:bird: readable by any user here
RUN mkdir -p /etc/bird/conf.d /run/bird /run/meshrr && rm -f /etc/bird/bird.conf && \
    chown -R root:root /etc/bird && chmod 0755 /etc/bird /etc/bird/conf.d
COPY agent/images/bird/entrypoint.sh /usr/local/bin/meshrr-bird
# non-root, the agent's user and group: BIRD needs no capability when the pod
# makes port 179 unprivileged (sysctl net.ipv4.ip_unprivileged_port_start=179,
# as the chart does); the chart runs it as root only for BFD (NET_ADMIN)
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/meshrr-bird"]
