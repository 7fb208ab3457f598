#!/usr/bin/env bash
# Builds, with no container registry, everything a kind cluster needs:
# Debian root filesystems (debootstrap), the control-plane component images,
# kind's base image and the node image with every image preloaded, plus the
# FRR router image the e2e tests use as routers outside the cluster.
# Run build-binaries.sh first. Each image is skipped when it already exists
# with the same inputs (label meshrr.inputs).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
progress_ticker build-images
trap progress_stop EXIT
export DOCKER_BUILDKIT=0
B=$KIND_WORK/bin
NODE_IMAGE=${NODE_IMAGE:-$IMAGE_REPO/node:$K8S_VERSION}

# image_fresh IMAGE HASH: the image exists and was built from these inputs
image_fresh() { [ "$(docker image inspect -f '{{ index .Config.Labels "meshrr.inputs" }}' "$1" 2>/dev/null)" = "$2" ]; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
# quiet CMD...: run a command, showing its output only when it fails (the
# legacy builder prints a deprecation banner on every build)
quiet() { local out; out=$("$@" 2>&1) || { echo "$out" >&2; return 1; }; }

# rootfs NAME PACKAGES [SUITE [APT_PACKAGES]] -> $KIND_WORK/rootfs-NAME.tar:
# debootstrap SUITE (default bookworm) with PACKAGES, then apt-get installs
# APT_PACKAGES in it (apt orders pre-dependencies that debootstrap's
# resolver does not: trixie's frr pulls systemd in through logrotate)
rootfs() {
  local name=$1 pkgs=$2 suite=${3:-bookworm} apt=${4:-} key id
  id=$pkgs
  [ "$suite" = bookworm ] || id="$suite $pkgs $apt"
  key=$(echo "$id" | sha256sum | cut -c1-16)
  done_already "rootfs-$name" "$key" && [ -f "$KIND_WORK/rootfs-$name.tar" ] && return 0
  log "debootstrap $name root filesystem ($suite)"
  local dir
  dir=$(mktemp -d /tmp/meshrr-rootfs.XXXXXX)
  debootstrap --variant=minbase --include="$pkgs" "$suite" "$dir" "$(debian_mirror)" >"$KIND_WORK/debootstrap-$name.log" 2>&1 ||
    { tail -20 "$KIND_WORK/debootstrap-$name.log" >&2; rm -rf "$dir"; return 1; }
  if [ -n "$apt" ]; then
    # no service starts in the chroot
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d" && chmod +x "$dir/usr/sbin/policy-rc.d"
    chroot "$dir" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $apt" \
      >>"$KIND_WORK/debootstrap-$name.log" 2>&1 ||
      { tail -20 "$KIND_WORK/debootstrap-$name.log" >&2; rm -rf "$dir"; return 1; }
    rm -f "$dir/usr/sbin/policy-rc.d"
  fi
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -cf "$KIND_WORK/rootfs-$name.tar" .
  rm -rf "$dir"
  mark_done "rootfs-$name" "$key"
}

rootfs node systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins,iptables,nftables,conntrack,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,ca-certificates,procps,bash,socat,jq,fuse-overlayfs,e2fsprogs
rootfs comp iptables,conntrack,ipset,ca-certificates,iproute2
# the test routers: Debian 13's FRR 10.3 (the kind node and component
# images stay on Debian 12 for now)
rootfs frr iproute2,iputils-ping,procps trixie frr

import_rootfs() { # NAME IMAGE [docker import changes...]
  local name=$1 image=$2 key; shift 2
  key=$(hash_of "$KIND_WORK/.stamp-rootfs-$name" <(echo "$@"))
  image_fresh "$image" "$key" && return 0
  log "import $image"
  docker import -c "LABEL meshrr.inputs=$key" "$@" "$KIND_WORK/rootfs-$name.tar" "$image" >/dev/null
}
import_rootfs comp "$IMAGE_REPO/comp-base:bookworm" -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

# component images, tagged as kubeadm expects with imageRepository=$IMAGE_REPO
ctx=$(mktemp -d /tmp/meshrr-ctx.XXXXXX)
trap 'rm -rf "$ctx"; progress_stop' EXIT
component() { # IMAGE DOCKERFILE FILES...
  local image=$1 dockerfile=$2 key; shift 2
  key=$(hash_of "$here/images/$dockerfile" "$@" <(docker image inspect -f '{{.Id}}' "$IMAGE_REPO/comp-base:bookworm"))
  image_fresh "$image" "$key" && return 0
  log "build $image"
  rm -rf "${ctx:?}"/* && cp "$@" "$ctx/"
  quiet docker build -q -f "$here/images/$dockerfile" --label "meshrr.inputs=$key" --build-arg "BASE=$IMAGE_REPO/comp-base:bookworm" -t "$image" "$ctx"
}
for c in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
  component "$IMAGE_REPO/$c:$K8S_VERSION" kube.Dockerfile "$B/$c"
done
component "$IMAGE_REPO/etcd:$ETCD_TAG" etcd.Dockerfile "$B/etcd"
component "$IMAGE_REPO/coredns:$COREDNS_VERSION" coredns.Dockerfile "$B/coredns"
component "$IMAGE_REPO/pause:$PAUSE_TAG" pause.Dockerfile "$B/pause"
# the CNI helper: a Node watch (client-go), built from this module
(cd "$here/.." && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$B/kindnet-lite" ./kind/kindnet-lite)
component "$IMAGE_REPO/kindnet-lite:v2" kindnet-lite.Dockerfile "$B/kindnet-lite"

# the images kubeadm will look for must be exactly the ones built
want=$("$B/kubeadm" config images list --kubernetes-version "$K8S_VERSION" --image-repository "$IMAGE_REPO" 2>/dev/null)
for im in $want; do docker image inspect "$im" >/dev/null 2>&1 || { echo "kubeadm expects $im, which was not built" >&2; exit 1; }; done
# NetworkPolicy: kube-network-policies behind its NFQUEUE steering (see netpol-steer.sh)
component "$IMAGE_REPO/kube-network-policies:$KNP_VERSION" kube-network-policies.Dockerfile "$B/netpol" "$here/images/netpol-steer.sh"
grep -q "image: $IMAGE_REPO/kube-network-policies:$KNP_VERSION\$" "$here/manifests/default-cni.yaml" ||
  { echo "manifests/default-cni.yaml must run $IMAGE_REPO/kube-network-policies:$KNP_VERSION (versions.sh)" >&2; exit 1; }
preload="$want $IMAGE_REPO/kindnet-lite:v2 $IMAGE_REPO/kube-network-policies:$KNP_VERSION"

# kind's base image: the node root filesystem plus kind's own files from
# the kind module (images/base/files), as kind's base Dockerfile does
KINDMOD=$(cd "$KIND_WORK/src/kind" && go list -m -f '{{.Dir}}' sigs.k8s.io/kind)
base_key=$(hash_of "$KIND_WORK/.stamp-rootfs-node" "$here/build-images.sh" <(echo "$KIND_VERSION $PAUSE_TAG") "$B/crictl")
if ! image_fresh "$IMAGE_REPO/base:bookworm" "$base_key"; then
  log "build kind base image"
  R=$(mktemp -d /tmp/meshrr-base.XXXXXX)
  tar -C "$R" -xf "$KIND_WORK/rootfs-node.tar"
  K=$KINDMOD/images/base/files
  install -m 0755 "$K"/usr/local/bin/* "$R/usr/local/bin/"
  mkdir -p "$R/kind/bin" "$R/LICENSES" "$R/etc/containerd" "$R/etc/default" "$R/etc/sysctl.d" "$R/etc/systemd/system/kubelet.service.d"
  install -m 0644 "$K/kind/README.txt" "$R/kind/"
  install -m 0755 "$K"/kind/bin/* "$R/kind/bin/"
  install -m 0644 "$K"/LICENSES/* "$R/LICENSES/"
  install -m 0644 "$K/etc/crictl.yaml" "$R/etc/"
  install -m 0644 "$K/etc/containerd/config.toml" "$R/etc/containerd/"
  install -m 0644 "$K/etc/default/kubelet" "$R/etc/default/"
  install -m 0644 "$K"/etc/sysctl.d/* "$R/etc/sysctl.d/"
  install -m 0644 "$K"/etc/systemd/system/*.service "$K"/etc/systemd/system/*.slice "$R/etc/systemd/system/"
  install -m 0644 "$K"/etc/systemd/system/kubelet.service.d/* "$R/etc/systemd/system/kubelet.service.d/"
  chmod 0755 "$R/kind" "$R/kind/bin"
  # the sandbox image is the locally built pause
  sed -i -E "s#sandbox_image = \"[^\"]*\"#sandbox_image = \"$IMAGE_REPO/pause:$PAUSE_TAG\"#" "$R/etc/containerd/config.toml"
  # without CAP_SYS_RESOURCE (see host-prep.sh) runc cannot lower
  # oom_score_adj: clamp it, as kind does for rootless nodes
  sed -i "s/restrict_oom_score_adj = false/restrict_oom_score_adj = true/" "$R/etc/containerd/config.toml"
  # kind's units expect containerd in /usr/local/bin; Debian's containerd 1.6 reads kind's config
  for b in containerd ctr containerd-shim-runc-v2; do ln -sf "/usr/bin/$b" "$R/usr/local/bin/$b"; done
  install -m 0755 "$B/crictl" "$R/usr/local/bin/crictl"
  mkdir -p "$R/opt/cni/bin"; for p in host-local loopback ptp portmap bridge; do ln -sf "/usr/lib/cni/$p" "$R/opt/cni/bin/$p"; done
  chroot "$R" sh -c 'ctr oci spec | jq ".hooks.createContainer[.hooks.createContainer| length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}" | jq "del(.process.rlimits)" > /etc/containerd/cri-base.json'
  find "$R/lib/systemd/system/sysinit.target.wants/" -name "systemd-tmpfiles-setup.service" -delete
  rm -f "$R"/lib/systemd/system/multi-user.target.wants/* "$R"/etc/systemd/system/*.wants/* "$R"/lib/systemd/system/local-fs.target.wants/* \
        "$R"/lib/systemd/system/sockets.target.wants/*udev* "$R"/lib/systemd/system/sockets.target.wants/*initctl* "$R"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >>"$R/etc/systemd/journald.conf"
  ln -sf /usr/lib/systemd/systemd "$R/sbin/init"
  chroot "$R" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
  chroot "$R" systemctl mask systemd-binfmt.service >/dev/null 2>&1
  mkdir -p "$R/etc/kubernetes/manifests"
  : >"$R/etc/machine-id"
  tar -C "$R" -c . | docker import -c 'ENV container=docker' -c 'ENTRYPOINT ["/usr/local/bin/entrypoint","/sbin/init"]' - "$IMAGE_REPO/base:import" >/dev/null
  rm -rf "$R"
  # systemd stops on SIGRTMIN+3, which docker import cannot set
  printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\nLABEL meshrr.inputs=%s\n' "$IMAGE_REPO/base:import" "$base_key" | quiet docker build -q -t "$IMAGE_REPO/base:bookworm" -
  docker rmi "$IMAGE_REPO/base:import" >/dev/null
fi

# node image: kubelet/kubeadm/kubectl, kind's manifests and every image preloaded
# shellcheck disable=SC2086 # preload: image names, split on purpose
node_key=$(hash_of <(docker image inspect -f '{{.Id}}' "$IMAGE_REPO/base:bookworm" $preload) "$B/kubelet" "$B/kubeadm" "$B/kubectl" "$here/manifests/default-cni.yaml" "$here/manifests/default-storage.yaml")
if ! image_fresh "$NODE_IMAGE" "$node_key"; then
  log "build node image $NODE_IMAGE"
  id=$(docker run -d --entrypoint=sleep --security-opt seccomp=unconfined "$IMAGE_REPO/base:bookworm" infinity)
  for b in kubelet kubeadm kubectl; do docker cp "$B/$b" "$id:/usr/bin/$b"; done
  docker exec "$id" sh -c "printf $K8S_VERSION > /kind/version; mkdir -p /kind/manifests"
  docker cp "$here/manifests/default-cni.yaml" "$id:/kind/manifests/default-cni.yaml"
  docker cp "$here/manifests/default-storage.yaml" "$id:/kind/manifests/default-storage.yaml"
  docker exec "$id" sh -c 'nohup containerd >/tmp/containerd.log 2>&1 &'
  for _ in $(seq 1 30); do docker exec "$id" test -S /run/containerd/containerd.sock && break; sleep 0.5; done
  for im in $preload; do
    docker save "$im" | docker exec -i "$id" ctr -n k8s.io images import --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - >/dev/null
  done
  docker exec "$id" sh -c 'pkill containerd; sleep 1; rm -f /tmp/containerd.log'
  docker commit -c 'ENTRYPOINT ["/usr/local/bin/entrypoint","/sbin/init"]' -c "LABEL meshrr.inputs=$node_key" "$id" "$NODE_IMAGE" >/dev/null
  docker rm -f "$id" >/dev/null
fi

# MetalLB controller and speaker: the static binaries alone, with the
# entrypoints MetalLB's manifests expect (/controller, /speaker)
for name in controller speaker; do
  image=$IMAGE_REPO/metallb-$name:$METALLB_VERSION
  rm -rf "${ctx:?}"/* && cp "$B/metallb-$name" "$ctx/$name"
  printf 'FROM scratch\nCOPY %s /%s\nENTRYPOINT ["/%s"]\n' "$name" "$name" "$name" >"$ctx/Dockerfile"
  key=$(hash_of "$ctx/$name" "$ctx/Dockerfile")
  image_fresh "$image" "$key" && continue
  log "build $image"
  quiet docker build -q --label "meshrr.inputs=$key" -t "$image" "$ctx"
done

# FRR routers for the e2e tests (Debian's frr package)
import_rootfs frr meshrr/frr:dev -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/lib/frr:/usr/sbin:/usr/bin:/sbin:/bin'
log "images ready: $NODE_IMAGE, meshrr/frr:dev"
