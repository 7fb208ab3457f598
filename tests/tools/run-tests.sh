#!/usr/bin/env bash
# `make test`: runs every phase in order, stops at the first failure, and
# prints how long each phase took.
set -uo pipefail
phases=(deps tools lint chart-lint chart-docs-check unit fuzz scale-reduced images-smoke e2e demo)
export DEMO_TEARDOWN=1 # the README's `make demo`, exercised and removed again
# the demo runs on the cluster the e2e suites leave when they pass (a new
# cluster each run: make e2e deletes one a failed run left), one cluster
# creation less; the demo deletes it
export HAND_OVER_CLUSTER=1
export FUZZTIME=${FUZZTIME:-60000x}
start=$(date +%s)
summary=()
report() {
  echo "==== phase durations"
  printf '  %s\n' "${summary[@]}"
  echo "  total              $(( $(date +%s) - start ))s"
}
for p in "${phases[@]}"; do
  s=$(date +%s)
  echo "==== phase $p"
  env=()
  [ "$p" != demo ] || env=(CLUSTER=meshrr-e2e)
  if ! env "${env[@]}" make --no-print-directory "$p"; then
    summary+=("$(printf '%-18s %5ds  FAILED' "$p" $(( $(date +%s) - s )))")
    report
    exit 1
  fi
  summary+=("$(printf '%-18s %5ds' "$p" $(( $(date +%s) - s )))")
done
report
