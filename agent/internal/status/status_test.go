package status

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/testutil/fixture"
)

var update = flag.Bool("update", false, "rewrite golden files")

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func est(addr string, up time.Duration, rcvd int) model.Session {
	return model.Session{Peer: netip.MustParseAddr(addr), State: "Established", Since: t0.Add(-up), Imported: rcvd}
}

// sample is a core group (sides a, b) and a region whose second RR has a
// down upstream session and a client that never connected.
func sample(t *testing.T) []Report {
	t.Helper()
	core := func(pod, side, self, peer, peerPod, peerSide string) Report {
		m := model.Model{RouterID: netip.MustParseAddr(self), Groups: []model.PeerGroup{
			{Name: "mesh", Role: model.RoleMesh, Neighbors: []model.Neighbor{{Addr: netip.MustParseAddr(peer), Name: "core/" + peerPod, Side: peerSide}}},
			{Name: "regions", Role: model.RoleClients, Ranges: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}},
		}}
		ss := []model.Session{est(peer, time.Hour, 3)}
		ss[0].Group = "mesh"
		for _, c := range []string{"10.244.5.1", "10.244.6.1"} {
			s := est(c, 30*time.Minute, 2)
			s.Group = "regions"
			ss = append(ss, s)
		}
		return Build(Report{Pod: pod, Namespace: "core", Group: "core.core", Side: side, Version: "v1", Backend: "bird", Ready: true, Time: t0}, m, ss)
	}
	region := func(pod, self, peer, peerPod string, upDown bool) Report {
		m := model.Model{RouterID: netip.MustParseAddr(self), Groups: []model.PeerGroup{
			{Name: "mesh", Role: model.RoleMesh, Neighbors: []model.Neighbor{{Addr: netip.MustParseAddr(peer), Name: "lothl/" + peerPod}}},
			{Name: "routers", Role: model.RoleClients, Ranges: []netip.Prefix{netip.MustParsePrefix("172.19.0.0/16")}},
			{Name: "upstream", Role: model.RoleUpstream, Neighbors: []model.Neighbor{
				{Addr: netip.MustParseAddr("10.244.1.10"), Name: "core/core-a-0", Side: "a"},
				{Addr: netip.MustParseAddr("10.244.2.10"), Name: "core/core-b-0", Side: "b"},
			}},
		}}
		ss := []model.Session{est(peer, time.Hour, 1), est("10.244.1.10", 20*time.Minute, 5), est("172.19.0.7", 5*time.Minute, 9)}
		ss[0].Group, ss[1].Group, ss[2].Group = "mesh", "upstream", "routers"
		ss[1].BFD = "Up" // BFD on the upstream sessions
		if upDown {
			ss = append(ss, model.Session{Peer: netip.MustParseAddr("10.244.2.10"), Group: "upstream", State: "Active", BFD: "Down"})
		} else {
			s := est("10.244.2.10", 20*time.Minute, 5)
			s.Group, s.BFD = "upstream", "Up"
			ss = append(ss, s)
		}
		r := Report{Pod: pod, Namespace: "lothl", Group: "lothl.lothlorien", Upstream: "core.core", Version: "v1", Backend: "bird", Ready: true, Time: t0}
		return Build(r, m, ss)
	}
	return []Report{
		region("rr-1", "10.244.6.1", "10.244.5.1", "rr-0", true),
		core("core-a-0", "a", "10.244.1.10", "10.244.2.10", "core-b-0", "b"),
		core("core-b-0", "b", "10.244.2.10", "10.244.1.10", "core-a-0", "a"),
		region("rr-0", "10.244.5.1", "10.244.6.1", "rr-1", false),
	}
}

func TestTableAndDOTGolden(t *testing.T) {
	groups := Groups(sample(t))
	require.Len(t, groups, 2)
	assert.Empty(t, groups[0].Problems, "core is healthy")
	assert.Equal(t, []string{"rr-1: upstream peer core/core-b-0 (10.244.2.10) is Active"}, groups[1].Problems)

	var table bytes.Buffer
	assert.True(t, Table(&table, groups), "a degraded group makes the verdict")
	fixture.Golden(t, filepath.Join("testdata", "status.golden"), table.Bytes(), *update)
	fixture.Golden(t, filepath.Join("testdata", "topology.dot.golden"), DOT(groups), *update)

	var healthy bytes.Buffer
	assert.False(t, Table(&healthy, groups[:1]))
}

func TestProblems(t *testing.T) {
	r := Report{Pod: "p", Ready: false, NotReady: "configuration not applied yet", LastError: "apply: bird said no",
		Peers: []Peer{{Group: "mesh", Role: "mesh", Addr: "10.0.0.2", State: "Connect"}, {Group: "routers", Role: "clients", Addr: "10.9.0.1", State: "Active"}}}
	assert.Equal(t, []string{
		"p not ready: configuration not applied yet",
		"p: last reconcile failed: apply: bird said no",
		"p: mesh peer 10.0.0.2 is Connect",
	}, Problems(r), "a client that left is not a problem of the group")
}

// A configured neighbour without a session is Down; the report carries no
// key even when the model has one.
func TestBuildReportsConfiguredPeersWithoutSessionsAndNoSecret(t *testing.T) {
	m := model.Model{Groups: []model.PeerGroup{{Name: "mesh", Role: model.RoleMesh, Password: "s3cr3t",
		Neighbors: []model.Neighbor{{Addr: netip.MustParseAddr("10.0.0.2"), Name: "ns/p2"}}}}}
	r := Build(Report{Pod: "p", Ready: true}, m, nil)
	require.Len(t, r.Peers, 1)
	assert.Equal(t, model.StateDown, r.Peers[0].State)
	assert.True(t, r.Peers[0].TCPMD5)
	assert.Equal(t, []string{"p: mesh peer ns/p2 (10.0.0.2) is Down (TCP-MD5 is on: if meshrr_tcp_md5_segments_dropped_total grows, the keys differ)"}, Problems(r))
	raw, err := json.Marshal(r)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "s3cr3t")
}

// Names from the cluster (pods, groups, client groups; reports come from
// the pods' /status) stay inside their DOT strings: Graphviz reads the
// output and finds exactly the nodes and edges of the sample, with the
// hostile text as their labels.
func TestHostileNamesStayInsideTheirDOTStrings(t *testing.T) {
	want := nodesAndEdges(t, DOT(Groups(sample(t))))
	for _, s := range fixture.HostileStrings(60) {
		if strings.ContainsRune(s, 0) {
			continue // Graphviz stops reading at NUL; no Kubernetes name holds one
		}
		reports := sample(t)
		for i := range reports {
			reports[i].Pod += s
			reports[i].Group += s
			for j := range reports[i].Peers {
				if reports[i].Peers[j].Name != "" {
					reports[i].Peers[j].Name += s
				}
				reports[i].Peers[j].Group += model.GroupName(s)
			}
		}
		out := DOT(Groups(reports))
		assert.Equal(t, want, nodesAndEdges(t, out), "%q", s)
	}
}

func nodesAndEdges(t *testing.T, dot []byte) [2]int {
	t.Helper()
	cmd := exec.Command("dot", "-Tjson")
	cmd.Stdin = bytes.NewReader(dot)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "Graphviz rejected:\n%s\n%s", out, dot)
	var g struct {
		Objects []json.RawMessage `json:"objects"`
		Edges   []json.RawMessage `json:"edges"`
	}
	require.NoError(t, json.Unmarshal(out, &g))
	return [2]int{len(g.Objects), len(g.Edges)}
}
