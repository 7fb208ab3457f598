package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWatcherReloadsGoodChangesAndKeepsTheLastGoodOnBadOnes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: a}\n"), 0o600))
	w, err := NewWatcher(p)
	require.NoError(t, err)
	var reloads []error
	w.OnReload = func(_ *Config, err error) { reloads = append(reloads, err) }

	w.Check()
	assert.Empty(t, reloads, "unchanged content is not a reload")

	require.NoError(t, os.WriteFile(p, []byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65001}\nmesh: {group: a}\n"), 0o600))
	w.Check()
	require.Len(t, reloads, 1)
	assert.NoError(t, reloads[0])
	assert.EqualValues(t, 65001, w.Current().ASN())
	select {
	case <-w.Changes():
	default:
		t.Fatal("no change signal")
	}

	require.NoError(t, os.WriteFile(p, []byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 0}\nmesh: {group: a}\n"), 0o600))
	w.Check()
	w.Check()
	require.Len(t, reloads, 2, "a rejected content is reported once")
	assert.ErrorContains(t, reloads[1], "identity.asn")
	assert.EqualValues(t, 65001, w.Current().ASN(), "the last good configuration stays in use")
	select {
	case <-w.Changes():
		t.Fatal("a rejected reload must not signal a change")
	default:
	}

	require.NoError(t, os.Remove(p))
	w.Check()
	w.Check()
	require.Len(t, reloads, 3, "a read error is reported once")
	assert.Error(t, reloads[2])
	assert.EqualValues(t, 65001, w.Current().ASN())

	require.NoError(t, os.WriteFile(p, []byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65001}\nmesh: {group: a}\n"), 0o600))
	w.Check()
	require.Len(t, reloads, 4, "the file coming back is a reload")
	assert.NoError(t, reloads[3])
}

func TestWatcherRefusesAnInvalidFileAtStart(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 0}\n"), 0o600))
	_, err := NewWatcher(p)
	require.Error(t, err)
}

// With KeepSessionSettings as Adjust (what the agent does), a reload that
// changes the hold timer and a client range applies the range and keeps
// the running hold timer.
func TestWatcherAdjustKeepsTheRunningSessionSettings(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: a}\ntimers: {hold: 90, keepalive: 30}\n"), 0o600))
	w, err := NewWatcher(p)
	require.NoError(t, err)
	running := w.Current()
	var kept []string
	w.Adjust = func(c *Config) { kept = c.KeepSessionSettings(running) }
	require.NoError(t, os.WriteFile(p, []byte("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: a}\ntimers: {hold: 9, keepalive: 3}\nclients: [{name: r, ranges: [10.0.0.0/8]}]\n"), 0o600))
	w.Check()
	assert.Equal(t, []string{"timers"}, kept)
	assert.Equal(t, 90, w.Current().Timers.Hold, "the hold timer waits for the pod's replacement")
	assert.Len(t, w.Current().Clients, 1, "the client range applies now")
}
