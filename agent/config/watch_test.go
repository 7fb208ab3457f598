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
	require.NoError(t, os.WriteFile(p, []byte("identity: {asn: 65000}\nmesh: {group: a}\n"), 0o600))
	w, err := NewWatcher(p)
	require.NoError(t, err)
	var reloads []error
	w.OnReload = func(_ *Config, err error) { reloads = append(reloads, err) }

	w.Check()
	assert.Empty(t, reloads, "unchanged content is not a reload")

	require.NoError(t, os.WriteFile(p, []byte("identity: {asn: 65001}\nmesh: {group: a}\n"), 0o600))
	w.Check()
	require.Len(t, reloads, 1)
	assert.NoError(t, reloads[0])
	assert.EqualValues(t, 65001, w.Current().ASN())
	select {
	case <-w.Changes():
	default:
		t.Fatal("no change signal")
	}

	require.NoError(t, os.WriteFile(p, []byte("identity: {asn: 0}\nmesh: {group: a}\n"), 0o600))
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

	require.NoError(t, os.WriteFile(p, []byte("identity: {asn: 65001}\nmesh: {group: a}\n"), 0o600))
	w.Check()
	require.Len(t, reloads, 4, "the file coming back is a reload")
	assert.NoError(t, reloads[3])
}

func TestWatcherRefusesAnInvalidFileAtStart(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(p, []byte("identity: {asn: 0}\n"), 0o600))
	_, err := NewWatcher(p)
	require.Error(t, err)
}
