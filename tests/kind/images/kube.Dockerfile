ARG BASE
FROM ${BASE}
COPY kube-* /usr/local/bin/
