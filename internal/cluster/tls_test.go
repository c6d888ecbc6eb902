package cluster

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testcerts"
	"github.com/pharos-obs/pharos/internal/testutil"
)

// counterValue returns the value of a counter without labels gathered
// from reg, or 0 when it is not registered.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) > 0 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// Gossip over TLS: members whose certificates come from the CA they trust
// gossip and form the ring; a member of a cluster with another CA cannot
// complete a handshake with them, so the two never merge.
func TestMemberlistTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := testcerts.NewCA(t, "gossip-ca"), testcerts.NewCA(t, "other-ca")
	withTLS := func(cfg Config, from *testcerts.CA, name string) Config {
		cert, key := from.CertFiles(t, dir, name)
		cfg.Memberlist.TLS = MemberlistTLSConfig{CertFile: cert, KeyFile: key, CAFile: from.CAFile(t, dir)}
		require.NoError(t, cfg.Validate())
		return cfg
	}
	a := startNode(t, withTLS(gossipConfig(t, "agg-a"), ca, "agg-a"))
	seed := a.kv.GossipAddress()
	b := startNode(t, withTLS(gossipConfig(t, "agg-b", seed), ca, "agg-b"))
	both := []string{"agg-a", "agg-b"}
	testutil.Poll(t, pollTimeout, pollInterval, func() (bool, string) { return seesHealthy([]*node{a, b}, both) })

	c := startNode(t, withTLS(gossipConfig(t, "agg-c", seed), other, "agg-c"))
	const dialErrors = "pharos_memberlist_tcp_transport_outgoing_stream_errors_total"
	testutil.Poll(t, pollTimeout, pollInterval, func() (bool, string) {
		v := counterValue(t, c.reg, dialErrors)
		return v > 0, fmt.Sprintf("%s of agg-c = %v", dialErrors, v)
	})
	ok, msg := seesHealthy([]*node{a, b}, both)
	require.True(t, ok, msg)
	require.Equal(t, []string{"agg-c"}, healthyIDs(c.member.Healthy()))
}

func TestMemberlistTLSConfig(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "ca")
	cert, key := ca.CertFiles(t, dir, "node")
	caFile := ca.CAFile(t, dir)
	for _, tc := range []struct {
		name string
		tls  MemberlistTLSConfig
		want []string
	}{
		{"off", MemberlistTLSConfig{}, nil},
		{"on", MemberlistTLSConfig{CertFile: cert, KeyFile: key, CAFile: caFile, ServerName: "pharos-gossip"}, nil},
		{"ca without cert", MemberlistTLSConfig{CAFile: caFile}, []string{"memberlist.tls.cert_file: required"}},
		{"cert without key", MemberlistTLSConfig{CertFile: cert}, []string{"memberlist.tls.key_file: required"}},
		{"missing ca", MemberlistTLSConfig{CertFile: cert, KeyFile: key, CAFile: filepath.Join(dir, "nope")}, []string{"memberlist.tls.ca_file:"}},
		{"key is no cert", MemberlistTLSConfig{CertFile: key, KeyFile: key}, []string{"memberlist.tls.cert_file:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig(t)
			cfg.Memberlist.TLS = tc.tls
			err := cfg.Validate()
			if len(tc.want) == 0 {
				require.NoError(t, err)
				kc := cfg.memberlistKVConfig()
				require.Equal(t, tc.tls.Enabled(), kc.TCPTransport.TLSEnabled)
				if tc.tls.Enabled() {
					require.Equal(t, cert, kc.TCPTransport.TLS.CertPath)
					require.Equal(t, caFile, kc.TCPTransport.TLS.CAPath)
					require.Equal(t, "pharos-gossip", kc.TCPTransport.TLS.ServerName)
				}
				return
			}
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}
