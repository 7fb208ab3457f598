package crpd

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every reply in testdata/captured (sources in its README.md) with the
// verdict the agent must reach on it. want is "" for success, else a part
// of the error.
var captures = []struct {
	file string
	rpc  string // load, check or commit: the step it answers
	want string
}{
	{"commit-empty-results-ok-15.1F4.xml", "commit", ""},
	{"ok-alone-12.1X46.xml", "commit", ""},
	{"ok-alone-12.1X46.xml", "check", ""},
	{"commit-errors-15.1F4.xml", "commit", "mgd: Missing mandatory statement: 'root-authentication' at [edit] (system)"},
	{"commit-errors-15.1F4.xml", "check", "configuration check-out failed: (missing mandatory statements)"},
	{"commit-xnm-errors-12.1X46.xml", "commit", "Only unit 0 is valid for this encapsulation at [edit interfaces ge-0/0/1] (unit 2)"},
	{"commit-xnm-errors-12.1X46.xml", "check", "configuration check-out failed"},
	{"commit-check-warnings-16.1R3.xml", "check", ""},
	// a check's reply is no proof of a commit
	{"commit-check-warnings-16.1R3.xml", "commit", `routing engine "fpc0" reported no success`},
	{"load-errors-no-count.xml", "load", "syntax error (system1)"},
}

func verdict(r Reply, rpc string) error {
	switch rpc {
	case "load":
		return r.LoadErr()
	case "check":
		return r.CheckErr()
	}
	return r.CommitErr()
}

func TestCapturedRepliesParse(t *testing.T) {
	for _, c := range captures {
		t.Run(c.rpc+"/"+c.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "captured", c.file))
			require.NoError(t, err)
			r, err := ParseReply(raw)
			require.NoError(t, err)
			if c.want == "" {
				assert.NoError(t, verdict(r, c.rpc))
			} else {
				assert.ErrorContains(t, verdict(r, c.rpc), c.want)
			}
		})
	}
	// the warnings of the 16.1R3 check are kept, whitespace collapsed
	raw, err := os.ReadFile("testdata/captured/commit-check-warnings-16.1R3.xml")
	require.NoError(t, err)
	r, err := ParseReply(raw)
	require.NoError(t, err)
	require.Len(t, r.Warnings, 2)
	assert.Equal(t, "mgd: requires 'mpls' license at [edit protocols] (mpls)", r.Warnings[0].Error())
	assert.Equal(t, []RoutingEngine{{Name: "fpc0", CheckSuccess: true}}, r.Engines)
}

// Backend.Apply against a server that answers one step with a captured
// reply: a success commits and is remembered, a failure commits nothing
// and leaves the last good state in place.
func TestApplyJudgesCapturedReplies(t *testing.T) {
	for _, c := range captures {
		t.Run(c.rpc+"/"+c.file, func(t *testing.T) {
			srv, cfg := startFakeJunos(t, false)
			b := newBackend(t, srv, NewConn(srv.addr, cfg))
			srv.answer(c.rpc, filepath.Join("captured", c.file), c.want == "")
			want := golden(t, "region")
			err := b.Apply(ctx5(t), want)
			committed, n := srv.snapshot()
			if c.want == "" {
				require.NoError(t, err)
				assert.Equal(t, 1, n)
				assert.Equal(t, string(want), committed)
				cur, err := b.Current(ctx5(t))
				require.NoError(t, err)
				assert.Equal(t, want, cur, "the commit is recorded: the next reconcile applies nothing")
				return
			}
			require.ErrorContains(t, err, c.want)
			assert.Zero(t, n)
			cur, err := b.Current(context.Background())
			require.NoError(t, err)
			assert.Nil(t, cur, "a failed apply is not remembered")
		})
	}
}

var summaryCaptures = []struct {
	file  string
	peers []Peer // Since left out: compared separately
}{
	{"bgp-summary-evpn.xml", []Peer{
		{Addr: netip.MustParseAddr("10.92.51.2"), AS: 65001, State: "Established", Received: 4},
		{Addr: netip.MustParseAddr("10.92.52.2"), AS: 65002, State: "Established", Received: 3, FlapCount: 1},
		// bgp.evpn.0 counts, default-switch.evpn.0 (a secondary copy) does not
		{Addr: netip.MustParseAddr("10.92.99.91"), AS: 65005, State: "Established", Received: 1},
		{Addr: netip.MustParseAddr("10.92.99.92"), AS: 65005, State: "Established", Received: 2, FlapCount: 1},
	}},
	{"bgp-summary-instance-v4v6.xml", []Peer{
		{Addr: netip.MustParseAddr("10.2.1.253"), AS: 29998, State: "Established", Received: 2},
		{Addr: netip.MustParseAddr("10.2.1.254"), AS: 29999, State: "Established", Received: 4},
		{Addr: netip.MustParseAddr("192.168.0.0"), AS: 20000, State: "Established", Received: 3, FlapCount: 1},
		{Addr: netip.MustParseAddr("192.169.1.0"), AS: 20000, State: "Active"},
		{Addr: netip.MustParseAddr("192.169.1.2"), AS: 20000, State: "Idle"},
		{Addr: netip.MustParseAddr("2a01:280:100::1"), AS: 20000, State: "Idle", FlapCount: 1},
	}},
	// inet.0 2 + bgp.l3vpn.0 4 + inet6.0 0; the VRF copies (3 and 1) do not count
	{"bgp-summary-l3vpn.xml", []Peer{
		{Addr: netip.MustParseAddr("192.168.2.15"), AS: 65002, State: "Established", Received: 6, FlapCount: 1},
	}},
}

func TestCapturedBGPSummaries(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	for _, c := range summaryCaptures {
		t.Run(c.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "captured", c.file))
			require.NoError(t, err)
			peers, err := ParseBGPSummary(raw, now)
			require.NoError(t, err)
			for i := range peers {
				assert.False(t, peers[i].Since.IsZero(), "%s: elapsed-time read", peers[i].Addr)
				peers[i].Since = time.Time{}
			}
			assert.Equal(t, c.peers, peers)
		})
	}
	raw, err := os.ReadFile("testdata/captured/bgp-summary-evpn.xml")
	require.NoError(t, err)
	peers, err := ParseBGPSummary(raw, now)
	require.NoError(t, err)
	assert.Equal(t, now.Add(-8918*time.Second), peers[0].Since)
}

// Sessions through the backend with the server answering a captured
// summary: the route server's EVPN peers count their routes once.
func TestSessionsFromACapturedEVPNSummary(t *testing.T) {
	srv, cfg := startFakeJunos(t, false)
	b := newBackend(t, srv, NewConn(srv.addr, cfg))
	srv.answer("summary", "captured/bgp-summary-evpn.xml", true)
	ss, err := b.Sessions(ctx5(t))
	require.NoError(t, err)
	require.Len(t, ss, 4)
	assert.Equal(t, 2, ss[3].Imported)
}

func TestCapturedUptime(t *testing.T) {
	raw, err := os.ReadFile("testdata/captured/uptime.xml")
	require.NoError(t, err)
	got, err := ParseProtocolsStarted(raw)
	require.NoError(t, err)
	assert.Equal(t, time.Unix(1498766692, 0), got, "protocols-started-time, not system-booted-time")

	srv, cfg := startFakeJunos(t, false)
	b := newBackend(t, srv, NewConn(srv.addr, cfg))
	srv.answer("uptime", "captured/uptime.xml", true)
	got, err = b.Started(ctx5(t))
	require.NoError(t, err)
	assert.Equal(t, time.Unix(1498766692, 0), got)
}

// The agent connects whatever hello form the server sends: the captured
// Junos hello (comments first, base:1.0 in the xml:ns form) and one
// without the NETCONF namespace, which go-netconf alone rejects.
func TestHelloForms(t *testing.T) {
	for _, file := range []string{"captured/hello-junos.xml", "hello-no-namespace.xml"} {
		t.Run(file, func(t *testing.T) {
			srv, cfg := startFakeJunos(t, false)
			srv.answer("hello", file, true)
			c := NewConn(srv.addr, cfg)
			defer c.Close()
			r, _, err := c.Do(ctx5(t), "<get-bgp-summary-information/>")
			require.NoError(t, err)
			require.NoError(t, r.Err())
			require.True(t, c.Connected())
		})
	}
	raw, err := os.ReadFile("testdata/captured/hello-junos.xml")
	require.NoError(t, err)
	h, err := ParseHello(raw)
	require.NoError(t, err)
	assert.Equal(t, 19313, h.SessionID)
	assert.Contains(t, h.Capabilities, "http://xml.juniper.net/netconf/junos/1.0")
	_, err = ParseHello([]byte(`<rpc-reply><ok/></rpc-reply>`))
	assert.ErrorContains(t, err, "no <hello>")
	_, err = ParseHello([]byte(`<hello><capabilities/></hello>`))
	assert.ErrorContains(t, err, "no capability")
}
