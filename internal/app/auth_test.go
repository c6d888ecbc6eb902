package app

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/auth"
)

// Listeners reachable from the network need authentication, or the
// conscious opt-out; the OTLP listeners count only where they run.
func TestValidateExposure(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string // errors; none means valid
	}{
		{name: "loopback defaults", args: nil},
		{name: "HTTP on all interfaces", args: []string{"-http.listen-address=0.0.0.0:9400"}, want: []string{"http.listen_address: 0.0.0.0:9400 is reachable"}},
		{name: "OTLP of an agent", args: []string{"-target=agent", "-nats.url=nats://n:4222", "-otlp.grpc.listen-address=:4317", "-otlp.http.listen-address=10.0.0.1:4318"},
			want: []string{"otlp.grpc.listen_address: :4317 is reachable", "otlp.http.listen_address: 10.0.0.1:4318 is reachable"}},
		{name: "OTLP of a querier is not bound", args: []string{"-target=query", "-query.aggregator.addresses=a:9400", "-otlp.grpc.listen-address=:4317"}},
		{name: "admin", args: []string{"-http.admin-listen-address=:6060"}, want: []string{"http.admin_listen_address: :6060 is reachable"}},
		{name: "opt-out by environment", args: []string{"-http.listen-address=0.0.0.0:9400"}, env: map[string]string{"PHAROS_AUTH_ALLOW_UNAUTHENTICATED": "true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := Load(append([]string{"-data.dir=" + t.TempDir()}, tc.args...), env(tc.env), nil)
			require.NoError(t, err)
			err = cfg.Validate()
			if len(tc.want) == 0 {
				require.NoError(t, err)
				return
			}
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

// The OTLP listeners take the HTTP listener's TLS unless they have their
// own.
func TestOTLPTLSInherits(t *testing.T) {
	var c Config
	c.HTTP.TLS = auth.TLSConfig{CertFile: "http.crt", KeyFile: "http.key"}
	require.Equal(t, c.HTTP.TLS, c.otlpTLS())
	c.OTLP.TLS = auth.TLSConfig{CertFile: "otlp.crt", KeyFile: "otlp.key"}
	require.Equal(t, c.OTLP.TLS, c.otlpTLS())
}
