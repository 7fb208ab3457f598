package crpd

import (
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Juniper/go-netconf/netconf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

func loadRPC(text string) string {
	return `<load-configuration action="replace" format="text"><configuration-text>` + xmlEscape(text) + `</configuration-text></load-configuration>`
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// cycle runs the agent's apply sequence on a private candidate.
func cycle(t *testing.T, c *Conn, text string) (load, check, commit Reply) {
	t.Helper()
	ctx := ctx5(t)
	r, _, err := c.Do(ctx, "<open-configuration><private/></open-configuration>")
	require.NoError(t, err)
	require.NoError(t, r.Err())
	load, _, err = c.Do(ctx, loadRPC(text))
	require.NoError(t, err)
	check, _, err = c.Do(ctx, "<commit-configuration><check/></commit-configuration>")
	require.NoError(t, err)
	commit, _, err = c.Do(ctx, "<commit-configuration/>")
	require.NoError(t, err)
	_, _, err = c.Do(ctx, "<close-configuration/>")
	require.NoError(t, err)
	return load, check, commit
}

func TestApplySequenceOverBothFramings(t *testing.T) {
	golden, err := os.ReadFile("testdata/region.golden")
	require.NoError(t, err)
	for _, offer11 := range []bool{false, true} {
		name := map[bool]string{false: "base1.0", true: "base1.1-chunked"}[offer11]
		t.Run(name, func(t *testing.T) {
			srv, cfg := startFakeJunos(t, offer11)
			c := NewConn(srv.addr, cfg)
			defer c.Close()
			load, check, commit := cycle(t, c, string(golden))
			assert.NoError(t, load.LoadErr())
			assert.NoError(t, check.CheckErr())
			assert.NoError(t, commit.CommitErr())
			srv.setState("10.244.6.1", "Established")
			_, raw, err := c.Do(ctx5(t), "<get-bgp-summary-information/>")
			require.NoError(t, err)
			peers, err := ParseBGPSummary(raw, time.Now())
			require.NoError(t, err)
			var addrs []string
			for _, p := range peers {
				addrs = append(addrs, p.Addr.String())
				if p.Addr.String() == "10.244.6.1" {
					assert.True(t, p.State.Established())
				}
			}
			assert.ElementsMatch(t, []string{"10.244.6.1", "fd00:244::6:1", "10.244.2.10", "10.244.3.10", "fd00:244::2:10", "fd00:244::3:10"}, addrs,
				"the summary lists the committed neighbours")
		})
	}
}

// TestGoNetconfKeepsChunkHeaders shows the defect Conn repairs: with 1.1 on
// both sides, go-netconf v0.3.1 returns the chunk headers inside the data.
func TestGoNetconfKeepsChunkHeaders(t *testing.T) {
	srv, cfg := startFakeJunos(t, true)
	conn, err := net.Dial("tcp", srv.addr)
	require.NoError(t, err)
	s, err := netconf.NewSSHSession(conn, cfg)
	require.NoError(t, err)
	defer s.Close()
	reply, err := s.Exec(netconf.RawMethod("<get-bgp-summary-information/>"))
	require.NoError(t, err)
	assert.Contains(t, reply.RawReply, "\n#", "chunk headers are left in the data")
	raw, err := ParseReply([]byte(reply.RawReply))
	if err == nil { // the second chunk header lands inside the message-id here
		assert.NotEqual(t, reply.MessageID, raw.MessageID, "the raw data is corrupted")
	}
	data, err := dechunk([]byte(reply.RawReply))
	require.NoError(t, err)
	r, err := ParseReply(data)
	require.NoError(t, err)
	assert.Equal(t, reply.MessageID, r.MessageID, "dechunked, the reply answers the request")
}

func TestNestedLoadAndCommitErrorsComeBack(t *testing.T) {
	srv, cfg := startFakeJunos(t, false)
	c := NewConn(srv.addr, cfg)
	defer c.Close()
	ctx := ctx5(t)
	_, _, err := c.Do(ctx, "<open-configuration><private/></open-configuration>")
	require.NoError(t, err)
	r, _, err := c.Do(ctx, loadRPC("groups {\n    replace: MESHRR {\n        protocls {\n        }\n    }\n}\n"))
	require.NoError(t, err, "an rpc-error is a reply, not a transport failure")
	assert.ErrorContains(t, r.Err(), "syntax error at [edit groups MESHRR] (protocls)")

	r, _, err = c.Do(ctx, loadRPC("groups {\n    replace: MESHRR {\n        protocols {\n            bgp {\n                group dcs {\n                    type external;\n                }\n            }\n        }\n    }\n}\n"))
	require.NoError(t, err)
	require.NoError(t, r.Err())
	r, _, err = c.Do(ctx, "<commit-configuration/>")
	require.NoError(t, err)
	assert.ErrorContains(t, r.CommitErr(), "Missing mandatory statement: 'peer-as'")
	_, _, err = c.Do(ctx, "<close-configuration/>")
	require.NoError(t, err)
	assert.Zero(t, srv.commits, "nothing was committed")
}

func TestConcurrentCallsAreSerialisedAndSessionsReconnect(t *testing.T) {
	srv, cfg := startFakeJunos(t, false)
	c := NewConn(srv.addr, cfg)
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, _, err := c.Do(context.Background(), "<get-bgp-summary-information/>")
			if err == nil {
				err = r.Err()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	// the server ends the session; the next call dials again
	_, _, err := c.Do(ctx5(t), "<close-session/>")
	require.NoError(t, err)
	_, _, err = c.Do(ctx5(t), "<get-bgp-summary-information/>")
	if err != nil { // the first call after the close may see the dropped session
		_, _, err = c.Do(ctx5(t), "<get-bgp-summary-information/>")
	}
	require.NoError(t, err, "the session is re-established")
}

func TestWrongKeyAndDeadServerAreClearErrors(t *testing.T) {
	srv, cfg := startFakeJunos(t, false)
	bad := *cfg
	_, other, _ := newTestSigner(t)
	bad.Auth = []ssh.AuthMethod{ssh.PublicKeys(other)}
	_, _, err := NewConn(srv.addr, &bad).Do(ctx5(t), "<get-bgp-summary-information/>")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "netconf session to")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	_, _, err = NewConn(addr, cfg).Do(ctx5(t), "<get-bgp-summary-information/>")
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "connect"), err.Error())
}

// A chunk size beyond RFC 6242's limit, one that overflows an int, or one
// larger than the data is refused instead of read (or panicking).
func TestDechunkRefusesBadSizes(t *testing.T) {
	for _, in := range []string{
		"\n#9223372036854775807\n<rpc-reply/>\n##\n",
		"\n#18446744073709551616\n<rpc-reply/>\n##\n",
		"\n#4294967296\n<rpc-reply/>\n##\n",
		"\n#0\n\n##\n",
		"\n#50\n<rpc-reply/>",
	} {
		_, err := dechunk([]byte(in))
		assert.Error(t, err, "%q", in)
	}
	out, err := dechunk([]byte("\n#5\n<rpc-\n#7\nreply/>\n##\n"))
	require.NoError(t, err)
	assert.Equal(t, "<rpc-reply/>", string(out))
}

func FuzzDechunk(f *testing.F) {
	f.Add([]byte("\n#5\n<rpc-\n#7\nreply/>\n##\n"))
	f.Add([]byte("\n#9223372036854775807\nx"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := dechunk(data)
		if err == nil && len(out) > len(data) {
			t.Fatalf("dechunked %d bytes out of %d", len(out), len(data))
		}
	})
}

// Each RPC's deadline ends with the RPC: a session that stays idle past
// the last call's deadline (the agent calls every few seconds, a commit's
// deadline is short) still carries the next call.
func TestAnIdleSessionOutlivesTheLastCallsDeadline(t *testing.T) {
	srv, cfg := startFakeJunos(t, false)
	c := NewConn(srv.addr, cfg)
	defer c.Close()
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, _, err := c.Do(short, "<get-bgp-summary-information/>")
	require.NoError(t, err)
	time.Sleep(600 * time.Millisecond) // idle past that deadline
	_, _, err = c.Do(ctx5(t), "<get-bgp-summary-information/>")
	require.NoError(t, err, "the next call on the idle session")
	_, _, err = c.Do(context.Background(), "<get-bgp-summary-information/>")
	require.NoError(t, err)
}
