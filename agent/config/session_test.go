package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeepSessionSettingsKeepsWhatResetsSessionsAndNothingElse(t *testing.T) {
	parse := func(s string) *Config {
		c, err := Parse([]byte(s))
		require.NoError(t, err, s)
		return c
	}
	running := parse("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000, clusterID: 10.0.0.1}\nmesh: {group: g}\ntimers: {hold: 90, keepalive: 30}\n")
	changed := parse("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65001, clusterID: 10.0.0.2}\nmesh: {group: g}\ntimers: {hold: 9, keepalive: 3}\n" +
		"gracefulRestart: {restartTime: 60}\nclients: [{name: r, ranges: [10.0.0.0/8]}]\npolicy: [{name: p, towards: [clients], matchCommunities: [\"65000:1\"], action: reject}]\n")
	kept := changed.KeepSessionSettings(running)
	assert.ElementsMatch(t, []string{"identity", "timers", "gracefulRestart"}, kept)
	assert.Equal(t, running.ASN(), changed.ASN(), "the compiled ASN follows")
	id, _ := changed.ExplicitClusterID()
	assert.Equal(t, "10.0.0.1", id.String(), "the compiled cluster id follows")
	assert.Equal(t, 90, changed.Timers.Hold)
	assert.Equal(t, running.GracefulRestart, changed.GracefulRestart)
	// what applies in place still does
	assert.Len(t, changed.Clients, 1)
	assert.Len(t, changed.Policy, 1)

	// a client group's ADD-PATH too; a new group takes its own at once
	withPaths := parse("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000, clusterID: 10.0.0.1}\nmesh: {group: g}\ntimers: {hold: 90, keepalive: 30}\nclients: [{name: r, ranges: [10.0.0.0/8], addPaths: 4}, {name: s, ranges: [11.0.0.0/8], addPaths: 2}]\n")
	running2 := parse("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000, clusterID: 10.0.0.1}\nmesh: {group: g}\ntimers: {hold: 90, keepalive: 30}\nclients: [{name: r, ranges: [10.0.0.0/8]}]\n")
	assert.Equal(t, []string{"clients[r].addPaths"}, withPaths.KeepSessionSettings(running2))
	assert.Zero(t, withPaths.Clients[0].AddPaths)
	assert.Equal(t, 2, withPaths.Clients[1].AddPaths)

	// every setting BIRD resets a client group's sessions for; the limit
	// itself and what only filters change apply at once
	run3 := parse("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: g}\nclients: [{name: r, ranges: [10.0.0.0/8], maxPrefixes: 10}, {name: x, ranges: [11.0.0.0/8]}]\ndownstream: {namespaces: [l], maxPrefixes: 5}\n")
	new3 := parse("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000}\nmesh: {group: g}\nclients: [{name: r, ranges: [10.0.0.0/8], maxPrefixes: 20, maxPrefixAction: warn, multihop: 2, ttlSecurity: true, nextHopUnchanged: true, export: {tier: default}}, " +
		"{name: x, type: external, ranges: [11.0.0.0/8], peerASNs: [\"65100\"]}]\ndownstream: {namespaces: [l], maxPrefixes: 5, maxPrefixAction: disable}\n")
	assert.ElementsMatch(t, []string{"clients[r].multihop", "clients[r].ttlSecurity", "clients[x].type"}, new3.KeepSessionSettings(run3))
	r := new3.Clients[0]
	assert.Equal(t, LimitWarn, r.MaxPrefixAction, "in place")
	assert.Zero(t, r.Multihop)
	assert.False(t, r.TTLSecurity)
	assert.Equal(t, 20, r.MaxPrefixes, "the limit applies in place")
	assert.True(t, *r.NextHopUnchanged, "in place")
	assert.Equal(t, TierDefault, r.Export.Tier, "in place")
	assert.Equal(t, ClientInternal, new3.Clients[1].Type, "a group changing type stays as it runs")
	assert.Empty(t, new3.Clients[1].PeerASNs)
	assert.Equal(t, LimitDisable, new3.Downstream.MaxPrefixAction, "in place")
	assert.Equal(t, []string{"addPaths", "multihop", "ttlSecurity", "type"}, SessionResettingClientSettings)

	same := parse("apiVersion: meshrr.io/v1alpha1\nkind: AgentConfig\nidentity: {asn: 65000, clusterID: 10.0.0.1}\nmesh: {group: g}\ntimers: {hold: 90, keepalive: 30}\nclients: [{name: r, ranges: [10.0.0.0/8]}]\n")
	assert.Empty(t, same.KeepSessionSettings(running), "only client ranges changed")
}
