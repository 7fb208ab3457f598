package metrics

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// The kernel drops TCP segments whose MD5 signature is wrong without telling
// the BGP daemon, so a key mismatch looks like a peer that never answers.
// The pod's own network namespace counts them (TcpExt in /proc/net/netstat):
// exported, they say why a session does not come up.
var md5Desc = prometheus.NewDesc(ns+"_tcp_md5_segments_dropped_total",
	"TCP segments the kernel dropped in the pod's network namespace for TCP-MD5 (RFC 2385): reason failure (wrong key), not_found (no signature where a key is set), unexpected (a signature where no key is set).",
	[]string{"reason"}, nil)

var md5Counters = map[string]string{"TCPMD5Failure": "failure", "TCPMD5NotFound": "not_found", "TCPMD5Unexpected": "unexpected"}

// md5Collector reads the counters at scrape time.
type md5Collector struct{ path string }

func (c md5Collector) Describe(ch chan<- *prometheus.Desc) { ch <- md5Desc }

func (c md5Collector) Collect(ch chan<- prometheus.Metric) {
	f, err := os.Open(c.path)
	if err != nil {
		return // not Linux, or no procfs: nothing to say
	}
	defer f.Close()
	got, err := ParseNetstat(f)
	if err != nil {
		return
	}
	for field, reason := range md5Counters {
		if v, ok := got[field]; ok {
			ch <- prometheus.MustNewConstMetric(md5Desc, prometheus.CounterValue, float64(v), reason)
		}
	}
}

// ParseNetstat reads the TcpExt counters of /proc/net/netstat (a header
// line of names, then a line of values).
func ParseNetstat(r io.Reader) (map[string]uint64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var names []string
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "TcpExt:" {
			continue
		}
		if names == nil {
			names = fields[1:]
			continue
		}
		vals := fields[1:]
		if len(vals) != len(names) {
			return nil, fmt.Errorf("netstat: %d TcpExt names but %d values", len(names), len(vals))
		}
		out := make(map[string]uint64, len(names))
		for i, n := range names {
			v, err := strconv.ParseUint(vals[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("netstat: %s: %w", n, err)
			}
			out[n] = v
		}
		return out, nil
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("netstat: no TcpExt counters")
}
