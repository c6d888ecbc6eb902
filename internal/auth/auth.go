package auth

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Realm is the basic-auth realm of every listener.
const Realm = "pharos"

// ExemptPaths answer without authentication: the kubelet's liveness and
// readiness probes carry no credentials and tell nothing but up or not.
// /metrics is not among them: Prometheus scrapes with credentials.
var ExemptPaths = []string{"/-/healthy", "/ready", "/-/ready"}

// Reasons of pharos_http_auth_failures_total.
const (
	ReasonMissing      = "missing_credentials"
	ReasonInvalid      = "invalid_credentials"
	ReasonUnknownCert  = "unknown_certificate"
	ReasonBadScheme    = "unsupported_scheme"
	ReasonMalformed    = "malformed_credentials"
	logSampleInterval  = 10 * time.Second
	failureLogMessage  = "authentication failed"
	failureLogMaxPaths = 128
)

// Authenticator checks credentials against the identities file. It is
// shared by every listener of the process; Listener gives each its own
// middleware.
type Authenticator struct {
	ids      *reloading[*identities] // nil without an identities file
	cache    bcryptCache
	logger   *slog.Logger
	failures *prometheus.CounterVec

	logMu      sync.Mutex
	lastLogged map[string]time.Time // listener + reason → last event
	suppressed map[string]int
}

// New returns the authenticator of cfg, with its metrics on reg.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Authenticator, error) {
	a := &Authenticator{
		logger: logger,
		failures: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_http_auth_failures_total",
			Help: "Requests refused for want of a valid identity, by listener (http, otlp-http, otlp-grpc, pprof) and reason.",
		}, []string{"listener", "reason"}),
		lastLogged: map[string]time.Time{},
		suppressed: map[string]int{},
	}
	if cfg.ConfigFile != "" {
		ids, err := newReloading(func() (*identities, error) {
			f, err := LoadFile(cfg.ConfigFile)
			if err != nil {
				logger.Warn("identities file not (re)loaded; keeping the previous one", "file", cfg.ConfigFile, "err", err)
				return nil, err
			}
			return f.compile()
		}, cfg.ConfigFile)
		if err != nil {
			return nil, err
		}
		a.ids = ids
	}
	return a, nil
}

// Listener is the authentication of one listener.
type Listener struct {
	a    *Authenticator
	name string
	// certs: verified client certificates are identities.
	certs bool
}

// Listener returns the authentication of the listener name (a label of
// the failures metric) served with tlsCfg. It is a no-op (Enabled false)
// when there is neither an identities file nor client-certificate
// verification; a nil Authenticator gives a no-op too.
func (a *Authenticator) Listener(name string, tlsCfg TLSConfig) *Listener {
	if a == nil {
		return nil
	}
	return &Listener{a: a, name: name, certs: tlsCfg.VerifiesClients()}
}

// Enabled reports whether requests need an identity.
func (l *Listener) Enabled() bool { return l != nil && (l.a.ids != nil || l.certs) }

// authenticate finds the identity of a request from its Authorization
// header and its TLS state. A header that is present decides (when there
// are identities to check it against): a wrong one is never passed over
// for the certificate.
func (l *Listener) authenticate(authz string, cs *tls.ConnectionState) (Identity, string) {
	var ids *identities
	if l.a.ids != nil {
		ids, _ = l.a.ids.get()
	}
	// Without password or token identities a header is ignored: the
	// client certificate decides.
	if authz != "" && ids != nil {
		scheme, cred, _ := strings.Cut(authz, " ")
		cred = strings.TrimSpace(cred)
		switch strings.ToLower(scheme) {
		case "basic":
			raw, err := base64.StdEncoding.DecodeString(cred)
			if err != nil {
				return Identity{}, ReasonMalformed
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return Identity{}, ReasonMalformed
			}
			if id, ok := ids.basic(&l.a.cache, user, pass); ok {
				return id, ""
			}
			return Identity{}, ReasonInvalid
		case "bearer":
			if id, ok := ids.bearer(cred); ok {
				return id, ""
			}
			return Identity{}, ReasonInvalid
		default:
			return Identity{}, ReasonBadScheme
		}
	}
	if l.certs && cs != nil && len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 0 {
		leaf := cs.VerifiedChains[0][0]
		if ids == nil {
			// Without an identities file the client CA alone decides.
			return Identity{Name: leaf.Subject.CommonName, Method: MethodMTLS}, ""
		}
		if id, ok := ids.cert(leaf); ok {
			return id, ""
		}
		return Identity{}, ReasonUnknownCert
	}
	return Identity{}, ReasonMissing
}

// fail counts a refusal and logs it, at most once per listener and reason
// every logSampleInterval (with the number of refusals not logged).
// Nothing secret is logged: no header, user name or token.
func (l *Listener) fail(reason, remote, what string) {
	l.a.failures.WithLabelValues(l.name, reason).Inc()
	key := l.name + "/" + reason
	now := time.Now()
	l.a.logMu.Lock()
	if now.Sub(l.a.lastLogged[key]) < logSampleInterval {
		l.a.suppressed[key]++
		l.a.logMu.Unlock()
		return
	}
	n := l.a.suppressed[key]
	l.a.lastLogged[key] = now
	l.a.suppressed[key] = 0
	l.a.logMu.Unlock()
	if len(what) > failureLogMaxPaths {
		what = what[:failureLogMaxPaths]
	}
	l.a.logger.Warn(failureLogMessage, "listener", l.name, "reason", reason, "remote", remote, "request", what, "suppressed_since_last", n)
}

func exempt(path string) bool {
	for _, p := range ExemptPaths {
		if path == p {
			return true
		}
	}
	return false
}

// Wrap returns h behind authentication: a request without a valid
// identity gets 401 with WWW-Authenticate challenges; an authenticated one
// carries its identity in its context (IdentityFrom). The probes
// (ExemptPaths) pass unauthenticated. A disabled or nil Listener returns
// h itself.
func (l *Listener) Wrap(h http.Handler) http.Handler {
	if !l.Enabled() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if exempt(r.URL.Path) {
			h.ServeHTTP(w, r)
			return
		}
		id, reason := l.authenticate(r.Header.Get("Authorization"), r.TLS)
		if reason != "" {
			l.fail(reason, r.RemoteAddr, r.Method+" "+r.URL.Path)
			if l.a.ids != nil {
				w.Header().Add("WWW-Authenticate", `Basic realm="`+Realm+`", charset="UTF-8"`)
				w.Header().Add("WWW-Authenticate", `Bearer realm="`+Realm+`"`)
			}
			http.Error(w, "401 Unauthorized: "+reasonText(reason), http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
	})
}

func reasonText(reason string) string {
	switch reason {
	case ReasonMissing:
		return "credentials required (basic auth, a bearer token or a client certificate)"
	case ReasonUnknownCert:
		return "the client certificate matches no identity"
	case ReasonBadScheme:
		return "unsupported authorization scheme"
	case ReasonMalformed:
		return "malformed credentials"
	default:
		return "invalid credentials"
	}
}

// grpcAuthenticate authenticates a gRPC call from its metadata
// ("authorization") and its connection's TLS state.
func (l *Listener) grpcAuthenticate(ctx context.Context, method string) (context.Context, error) {
	var authz string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			authz = v[0]
		}
	}
	var (
		cs     *tls.ConnectionState
		remote string
	)
	if p, ok := peer.FromContext(ctx); ok {
		if p.Addr != nil {
			remote = p.Addr.String()
		}
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			cs = &ti.State
		}
	}
	id, reason := l.authenticate(authz, cs)
	if reason != "" {
		l.fail(reason, remote, method)
		return ctx, status.Error(codes.Unauthenticated, reasonText(reason))
	}
	return WithIdentity(ctx, id), nil
}

// UnaryInterceptor authenticates unary calls; nil when disabled.
func (l *Listener) UnaryInterceptor() grpc.UnaryServerInterceptor {
	if !l.Enabled() {
		return nil
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := l.grpcAuthenticate(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor authenticates streaming calls; nil when disabled.
func (l *Listener) StreamInterceptor() grpc.StreamServerInterceptor {
	if !l.Enabled() {
		return nil
	}
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := l.grpcAuthenticate(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
	}
}

type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// ServerOptions are the gRPC server options of a listener: its TLS
// credentials (when tlsCfg is non-nil) and its interceptors (when
// enabled). Interceptors given here run before any added later with
// grpc.ChainUnaryInterceptor.
func (l *Listener) ServerOptions(tlsCfg *tls.Config) []grpc.ServerOption {
	var opts []grpc.ServerOption
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	if l.Enabled() {
		opts = append(opts, grpc.ChainUnaryInterceptor(l.UnaryInterceptor()), grpc.ChainStreamInterceptor(l.StreamInterceptor()))
	}
	return opts
}
