#!/usr/bin/env bash
# make scale-loopback: the loopback scale suites (tables through three RRs
# with real BIRD) in a network namespace of their own, with IPv6 loopback
# addresses there, so the host is not touched. The IPv4 and IPv6 table
# sizes come from MESHRR_SCALE_ROUTES and MESHRR_SCALE_ROUTES6; the log is
# written to LOG and filtered on the terminal.
# Usage: scale-loopback.sh TEST_BINARY LOG
set -euo pipefail
bin=${1:?the compiled scale test binary}; log=${2:?log file}
cd "$(dirname "$0")/../../agent/internal/backend/bird"
# shellcheck disable=SC2016 # expanded by the inner shell, in the namespace
unshare --net sh -ec '
  ip link set lo up
  for a in 145 146 147 161 162; do ip -6 addr add fd00:10::$a/128 dev lo nodad; done
  exec "$0" -test.count=1 -test.timeout=60m -test.v -test.run "^TestScale(IPv6)?TableThroughThreeRRs$"' "$bin" 2>&1 |
  tee "$log" | grep -E --line-buffered 'scale_test.go|^(---|ok|FAIL|PASS)|Error|expected|actual'
exit "${PIPESTATUS[0]}"
