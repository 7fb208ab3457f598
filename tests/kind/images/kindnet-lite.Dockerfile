ARG BASE
FROM ${BASE}
COPY kubectl kindnet-lite.sh /usr/local/bin/
