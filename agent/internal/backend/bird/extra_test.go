package bird_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/backend/bird"
	"github.com/meshrr/meshrr/agent/internal/model"
	"github.com/meshrr/meshrr/agent/internal/plan"
	"github.com/meshrr/meshrr/agent/internal/testutil/birdlab"
)

// An extraConfig edited outside helm (its ConfigMap changed by hand) and
// broken: BIRD refuses it once, the agent reports it, the last version BIRD
// accepted stays in use, the mesh still changes, a restarted BIRD starts
// on the good version, and a fixed version is taken at the next apply.
func TestExtraConfigBIRDRefusesKeepsTheLastGoodVersion(t *testing.T) {
	lab := birdlab.Start(t, "extra", "127.0.10.210")
	bc := lab.BackendConfig()
	bc.ExtraConfigFile = filepath.Join(lab.Dir, "mounted-extra.conf") // as kubelet mounts it
	b := bird.New(bc)
	var heard []error
	b.OnExtraConfig(func(refused error) { heard = append(heard, refused) })
	cfg, err := config.Parse([]byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: g}\n"))
	require.NoError(t, err)
	self := plan.Self{Name: "rr-0", Namespace: "ns", Addrs: []netip.Addr{lab.Addr}}
	apply := func(members ...model.Member) {
		t.Helper()
		res, err := plan.Build(plan.Input{Config: cfg, Self: self, Snapshot: model.Snapshot{Synced: true, Members: members}, Now: time.Now()})
		require.NoError(t, err)
		out, err := b.Render(res.Model)
		require.NoError(t, err)
		require.NoError(t, b.Apply(context.Background(), out))
	}
	setSource := func(text string) {
		require.NoError(t, os.WriteFile(bc.ExtraConfigFile, []byte(text), 0o644))
	}
	protocols := func() string { return lab.Must(t, "show protocols") }

	setSource("protocol static extra_ok { ipv4; route 10.42.0.0/24 blackhole; }\n")
	apply()
	assert.Contains(t, protocols(), "extra_ok")
	require.Equal(t, []error{nil}, heard, "the first version is in use")

	setSource("protocol static extra_bad { ipv4; route 10.43.0.0/24 blackhol; }\n")
	peer := model.Member{Namespace: "ns", Group: "g", Pod: "rr-1", Addrs: []netip.Addr{netip.MustParseAddr("127.0.10.211")}}
	apply(peer)
	require.Len(t, heard, 2)
	require.Error(t, heard[1], "BIRD refuses the broken version")
	assert.Contains(t, heard[1].Error(), "syntax error")
	p := protocols()
	assert.Contains(t, p, "extra_ok", "the last good version stays")
	assert.NotContains(t, p, "extra_bad")
	assert.Contains(t, p, "mesh_127_0_10_211", "the mesh change is applied all the same")
	apply(peer)
	assert.Len(t, heard, 2, "a refused version is not tried (nor reported) again")

	lab.Crash(t) // the restarted BIRD loads the agent's file: the good version
	p = protocols()
	assert.Contains(t, p, "extra_ok")
	assert.Contains(t, p, "mesh_127_0_10_211")

	setSource("protocol static extra_fixed { ipv4; route 10.44.0.0/24 blackhole; }\n")
	apply(peer)
	require.Len(t, heard, 3)
	assert.NoError(t, heard[2], "the fixed version is in use")
	p = protocols()
	assert.Contains(t, p, "extra_fixed")
	assert.NotContains(t, p, "extra_ok")
	cur, err := b.Current(context.Background())
	require.NoError(t, err)
	assert.NotContains(t, string(cur), ".next", "the file BIRD loads on start includes the agent's live copy")
}
