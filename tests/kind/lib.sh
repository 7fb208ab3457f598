# shellcheck shell=bash
# Helpers shared by the kind harness scripts.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.sh
. "$here/versions.sh"
mkdir -p "$KIND_WORK/bin"

# shellcheck source=../tools/progress.sh
. "$here/../tools/progress.sh"

step_start=$(date +%s)
log() { echo "$(basename "$0" .sh) [$(( $(date +%s) - step_start ))s] $*"; progress_step "$*"; }

# stamp KEY: has this exact build (KEY names inputs and versions) been done?
done_already() { [ "$(cat "$KIND_WORK/.stamp-$1" 2>/dev/null)" = "$2" ]; }
mark_done() { echo "$2" >"$KIND_WORK/.stamp-$1"; }

# go_module DIR MODULE VERSION: a fresh generated module in DIR that requires
# MODULE@VERSION, for the caller to build in (never asks the proxy for
# version lists).
go_module() {
  local dir=$1 module=$2 version=$3
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && go mod init local/build >/dev/null 2>&1 && go mod edit -require="$module@$version")
}

debian_mirror() {
  local m=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)}
  [ -n "$m" ] || m=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$m" ] || { echo "no Debian mirror in apt sources; set DEBIAN_MIRROR" >&2; return 1; }
  echo "$m"
}
