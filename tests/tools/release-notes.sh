#!/usr/bin/env bash
# release-notes.sh VERSION: the CHANGELOG.md section of VERSION ("## [VERSION]"
# up to the next "## ["), the release workflow's GitHub release notes; fails
# when CHANGELOG.md has no such section or it is empty. make lint runs it for
# "Unreleased".
set -euo pipefail
version=${1:?usage: release-notes.sh VERSION (e.g. 0.1.0, or Unreleased)}
changelog=$(dirname "$0")/../../CHANGELOG.md
notes=$(awk -v v="$version" '
  index($0, "## [") == 1 { if (found) exit; found = (substr($0, 5, length(v) + 1) == v "]"); next }
  found' "$changelog")
[ -n "$(tr -d '[:space:]' <<<"$notes")" ] || {
  echo "release-notes: CHANGELOG.md has no section \"## [$version]\" with text: add one (Keep a Changelog) before releasing $version" >&2
  exit 1
}
printf '%s\n' "$notes"
