package auth

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// identityHealth answers Check with SERVING only when the call carries
// an identity, so that the test sees the interceptor's context.
type identityHealth struct {
	*health.Server
	seen chan Identity
}

func (h identityHealth) Check(ctx context.Context, r *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	id, ok := IdentityFrom(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "no identity in context")
	}
	h.seen <- id
	return h.Server.Check(ctx, r)
}

func TestGRPCInterceptors(t *testing.T) {
	dir := t.TempDir()
	ca, clientCA, otherCA := newTestCA(t, "server-ca"), newTestCA(t, "client-ca"), newTestCA(t, "other-ca")
	tlsFiles := serverFiles(t, dir, ca, clientCA)
	tlsFiles.ClientAuth = ClientAuthVerifyIfGiven
	authn, err := New(Config{ConfigFile: identitiesFile(t, dir)}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	srvTLS, err := ServerTLS(tlsFiles, "h2")
	require.NoError(t, err)
	srv := grpc.NewServer(authn.Listener("otlp-grpc", tlsFiles).ServerOptions(srvTLS)...)
	hs := identityHealth{Server: health.NewServer(), seen: make(chan Identity, 10)}
	healthpb.RegisterHealthServer(srv, hs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})

	for _, tc := range []struct {
		name   string
		tls    *tls.Config
		authz  string
		code   codes.Code
		want   Identity
		stream bool
	}{
		{name: "no credentials", tls: &tls.Config{RootCAs: ca.Pool()}, code: codes.Unauthenticated},
		{name: "no credentials, stream", tls: &tls.Config{RootCAs: ca.Pool()}, code: codes.Unauthenticated, stream: true},
		{name: "wrong token", tls: &tls.Config{RootCAs: ca.Pool()}, authz: "Bearer nope", code: codes.Unauthenticated},
		{name: "bearer", tls: &tls.Config{RootCAs: ca.Pool()}, authz: "Bearer t0ken", want: Identity{Name: "ci", Method: MethodBearer, Tenant: "team-b"}},
		{name: "basic", tls: &tls.Config{RootCAs: ca.Pool()}, authz: "Basic YWxpY2U6c2VjcmV0", want: Identity{Name: "alice", Method: MethodBasic, Tenant: "team-a"}},
		{name: "client certificate", tls: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{clientCA.Pair(t, "agent-1")}}, want: Identity{Name: "agent", Method: MethodMTLS, Tenant: "team-c"}},
		{name: "client certificate, stream", tls: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{clientCA.Pair(t, "agent-1")}}, want: Identity{Name: "agent", Method: MethodMTLS, Tenant: "team-c"}, stream: true},
		// Go clients send no certificate the server's CAs did not sign.
		{name: "certificate from another CA", tls: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{otherCA.Pair(t, "agent-1")}}, code: codes.Unauthenticated},
		{name: "client trusting another CA", tls: &tls.Config{RootCAs: otherCA.Pool()}, authz: "Bearer t0ken", code: codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tc.tls)))
			require.NoError(t, err)
			defer conn.Close()
			ctx := t.Context()
			if tc.authz != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", tc.authz)
			}
			client := healthpb.NewHealthClient(conn)
			if tc.stream {
				w, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
				if err == nil {
					_, err = w.Recv()
				}
				require.Equal(t, tc.code, status.Code(err), "%v", err)
				return
			}
			_, err = client.Check(ctx, &healthpb.HealthCheckRequest{})
			require.Equal(t, tc.code, status.Code(err), "%v", err)
			if tc.code == codes.OK {
				require.Equal(t, tc.want, <-hs.seen)
			}
		})
	}
}
