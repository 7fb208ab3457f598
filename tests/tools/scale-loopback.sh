#!/usr/bin/env bash
# make scale-loopback and make fleet-limit: the loopback scale suites (tables
# through three RRs, and one RR serving the meshrr-fleet client fleet, with
# real BIRD) in a network namespace of their own, with IPv6 loopback
# addresses there, so the host is not touched. The sizes come from
# MESHRR_SCALE_ROUTES, MESHRR_SCALE_ROUTES6 and MESHRR_FLEET_CLIENTS, the
# fleet binary from MESHRR_FLEET_BIN; the log is written to LOG and
# filtered on the terminal. RUN selects the tests (default: all of them).
# Usage: scale-loopback.sh TEST_BINARY LOG [RUN]
set -euo pipefail
bin=${1:?the compiled scale test binary}; log=${2:?log file}
run=${3:-^TestScale(IPv6)?TableThroughThreeRRs$|^TestScaleFleetOnOneRR$}
cd "$(dirname "$0")/../../agent/internal/backend/bird"
# shellcheck disable=SC2016 # expanded by the inner shell, in the namespace
unshare --net sh -ec '
  ip link set lo up
  for a in 145 146 147 161 162; do ip -6 addr add fd00:10::$a/128 dev lo nodad; done
  exec "$0" -test.count=1 -test.timeout=60m -test.v -test.run "$1"' "$bin" "$run" 2>&1 |
  tee "$log" | grep -E --line-buffered '(scale|fleet_scale)_test.go|^(---|ok|FAIL|PASS)|Error|expected|actual'
exit "${PIPESTATUS[0]}"
