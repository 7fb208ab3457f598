ARG BASE
FROM ${BASE}
# tests/kind/kindnet-lite, built from this module (iptables and iproute2 come with the base)
COPY kindnet-lite /usr/local/bin/
