# shellcheck shell=bash disable=SC2034 # sourced: the scripts that source it use these
# Pinned versions of everything the offline kind harness builds.
# Kubernetes 1.34: these machines run cgroup v1, which 1.35+ refuses by default.
K8S_VERSION=v1.34.3
K8S_STAGING_VERSION=v0.34.3
ETCD_VERSION=v3.6.5
ETCD_TAG=3.6.5-0
COREDNS_VERSION=v1.12.1
CRICTL_VERSION=v1.34.0
KIND_VERSION=v0.33.0
PAUSE_TAG=3.10.1
# MetalLB (BGP mode, native speaker) for the route-server suites
METALLB_VERSION=v0.15.2
# NetworkPolicy in the test clusters: the SIG Network reference implementation
KNP_VERSION=v0.8.0
# kubeadm pulls control-plane images from here; the node image carries them
# preloaded under this local name, so nothing is ever pulled.
IMAGE_REPO=meshrr-kind
CACHE=${MESHRR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshrr}
KIND_WORK=$CACHE/kind
