ARG BASE
FROM ${BASE}
COPY etcd /usr/local/bin/etcd
