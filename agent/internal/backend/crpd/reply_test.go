package crpd

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func reply(t *testing.T, name string) Reply {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	r, err := ParseReply(raw)
	require.NoError(t, err)
	return r
}

func TestNestedLoadErrorsAreSurfaced(t *testing.T) {
	r := reply(t, "load-error.xml")
	assert.Equal(t, "7", r.MessageID)
	assert.Equal(t, 1, r.LoadErrorCount)
	assert.False(t, r.LoadSuccess)
	err := r.Err()
	require.Error(t, err)
	assert.Equal(t, "syntax error at [edit groups MESHRR protocols bgp group mesh] (locl-address)", err.Error())
}

func TestWarningsDoNotFailALoad(t *testing.T) {
	r := reply(t, "load-warning.xml")
	assert.NoError(t, r.Err())
	assert.NoError(t, r.LoadErr())
	require.Len(t, r.Warnings, 1)
	assert.Equal(t, "statement has no effect", r.Warnings[0].Message)
}

func TestOkBesideANestedCommitErrorIsAFailure(t *testing.T) {
	r := reply(t, "commit-error-beside-ok.xml")
	assert.True(t, r.Ok)
	err := r.CommitErr()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Missing mandatory statement: 'peer-as'")

	assert.NoError(t, reply(t, "commit-success.xml").CommitErr())
}

// Verdicts for shapes no capture shows (the captured ones are in
// captures_test.go): several routing engines, an engine without success,
// a reply with no proof at all.
func TestCommitVerdictPerRoutingEngine(t *testing.T) {
	for _, tc := range []struct {
		name, reply, want string
	}{
		{"two engines succeed", `<rpc-reply><commit-results><routing-engine><name>re0</name><commit-success/></routing-engine><routing-engine><name>re1</name><commit-success/></routing-engine></commit-results></rpc-reply>`, ""},
		{"one engine of two is silent", `<rpc-reply><commit-results><routing-engine><name>re0</name><commit-success/></routing-engine><routing-engine><name>re1</name></routing-engine></commit-results><ok/></rpc-reply>`, `routing engine "re1" reported no success`},
		{"an engine's error beside ok", `<rpc-reply><commit-results><routing-engine><name>re1</name><xnm:error xmlns:xnm="http://xml.juniper.net/xnm/1.1/xnm"><message>re1 is not reachable</message></xnm:error></routing-engine></commit-results><ok/></rpc-reply>`, "re1 is not reachable"},
		{"no proof", `<rpc-reply><commit-results></commit-results></rpc-reply>`, "neither <ok/> nor a success element"},
		{"a warning does not fail", `<rpc-reply><commit-results><xnm:warning xmlns:xnm="http://xml.juniper.net/xnm/1.1/xnm"><message>statement ignored</message></xnm:warning></commit-results><ok/></rpc-reply>`, ""},
		{"an element merely called error", `<rpc-reply><bgp-information><error>0</error></bgp-information><ok/></rpc-reply>`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseReply([]byte(tc.reply))
			require.NoError(t, err)
			if tc.want == "" {
				assert.NoError(t, r.CommitErr())
			} else {
				assert.ErrorContains(t, r.CommitErr(), tc.want)
			}
		})
	}
}

func TestLoadErrorCountWithoutDetailsIsStillAnError(t *testing.T) {
	r, err := ParseReply([]byte(`<rpc-reply><load-configuration-results><load-error-count>2</load-error-count></load-configuration-results></rpc-reply>`))
	require.NoError(t, err)
	assert.ErrorContains(t, r.Err(), "2 error(s)")
	_, err = ParseReply([]byte(`<rpc-reply><ok/>`))
	assert.Error(t, err, "truncated XML is malformed")
}

func TestBGPSummaryPeers(t *testing.T) {
	raw, err := os.ReadFile("testdata/bgp-summary.xml")
	require.NoError(t, err)
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	peers, err := ParseBGPSummary(raw, now)
	require.NoError(t, err)
	assert.Equal(t, []Peer{
		{Addr: netip.MustParseAddr("10.244.2.7"), AS: 65000, State: "Established", Since: now.Add(-3723 * time.Second), FlapCount: 1, Received: 7},
		{Addr: netip.MustParseAddr("fd00:244::3:10"), AS: 65000, State: "Active", Since: now.Add(-15 * time.Second)},
		{Addr: netip.MustParseAddr("10.244.9.1"), AS: 4200000001, State: "Connect", Since: now.Add(-2 * time.Second), FlapCount: 3},
		{Addr: netip.MustParseAddr("10.244.9.2"), AS: 4200000000, State: "OpenSent", Since: now.Add(-1 * time.Second)},
		{Addr: netip.MustParseAddr("10.244.9.3"), AS: 65000, State: "OpenConfirm", Since: now.Add(-1 * time.Second)},
	}, peers)
}

func FuzzParseReply(f *testing.F) {
	seeds := []string{"load-error.xml", "load-warning.xml", "load-ok.xml", "commit-error-beside-ok.xml", "commit-success.xml", "commit-two-re.xml", "bgp-summary.xml"}
	for _, c := range captures {
		seeds = append(seeds, filepath.Join("captured", c.file))
	}
	for _, c := range summaryCaptures {
		seeds = append(seeds, filepath.Join("captured", c.file))
	}
	for _, n := range seeds {
		raw, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`<rpc-reply><configuration><groups><name>MESHRR</name><apply-macro><name>meshrr-agent</name><data><name>digest</name><value>ab</value></data></apply-macro></groups></configuration></rpc-reply>`))
	f.Add([]byte(`<rpc-reply><rpc-error><error-message>x</error-message></rpc-error></rpc-reply>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if r, err := ParseReply(data); err == nil {
			_ = r.Err()
			_ = r.CommitErr()
		}
		_, _ = ParseBGPSummary(data, time.Unix(0, 0))
		_, _ = ParseCommittedDigest(data)
		_, _ = ParseProtocolsStarted(data)
	})
}

func TestParseCommittedDigest(t *testing.T) {
	ns := `<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" xmlns:junos="http://xml.juniper.net/junos/23.4R1/junos" message-id="7">` +
		`<configuration xmlns="http://xml.juniper.net/xnm/1.1/xnm" junos:commit-seconds="1"><groups><name>OTHER</name><apply-macro><name>meshrr-agent</name><data><name>digest</name><value>00</value></data></apply-macro></groups>` +
		`<groups><name>MESHRR</name><apply-macro><name>meshrr-agent</name><data><name>digest</name><value>abc</value></data></apply-macro></groups></configuration></rpc-reply>`
	d, err := ParseCommittedDigest([]byte(ns))
	require.NoError(t, err)
	assert.Equal(t, "abc", d, "only the MESHRR group's macro counts")

	d, err = ParseCommittedDigest([]byte(`<rpc-reply><configuration/></rpc-reply>`))
	require.NoError(t, err)
	assert.Empty(t, d)

	_, err = ParseCommittedDigest([]byte(`<rpc-reply><rpc-error><error-severity>error</error-severity><error-message>permission denied</error-message></rpc-error></rpc-reply>`))
	require.ErrorContains(t, err, "permission denied")
}

func TestRenderedDigestIsTheDigestOfTheText(t *testing.T) {
	for _, name := range []string{"region", "routeservers-evpn"} {
		got := golden(t, name)
		d := DigestOf(got)
		require.Len(t, d, 64)
		sum := sha256.Sum256(bytes.Replace(got, []byte(d), []byte("-"), 1))
		assert.Equal(t, hex.EncodeToString(sum[:]), d)
	}
}

func TestParseProtocolsStarted(t *testing.T) {
	got, err := ParseProtocolsStarted([]byte(`<rpc-reply xmlns:junos="http://xml.juniper.net/junos/23.4R1/junos"><system-uptime-information>` +
		`<system-booted-time><date-time junos:seconds="100">x</date-time></system-booted-time>` +
		`<protocols-started-time><date-time junos:seconds="1795300000">y</date-time></protocols-started-time></system-uptime-information></rpc-reply>`))
	require.NoError(t, err)
	assert.Equal(t, time.Unix(1795300000, 0), got, "the protocols' time, not the system's")
	_, err = ParseProtocolsStarted([]byte(`<rpc-reply><system-uptime-information/></rpc-reply>`))
	require.ErrorContains(t, err, "no protocols-started-time")
	_, err = ParseProtocolsStarted([]byte(`<rpc-reply><protocols-started-time><date-time junos:seconds="x"/></protocols-started-time></rpc-reply>`))
	require.Error(t, err)
}
