ARG BASE
FROM ${BASE}
# tests/kind/kindnet-lite, built from this module (iproute2 comes with the base)
COPY kindnet-lite /usr/local/bin/
