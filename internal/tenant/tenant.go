// Package tenant resolves and validates the tenant of a request, and
// carries it in a context.
//
// A request's tenant is, in order: the tenant of its authenticated
// identity (internal/auth), when the identity is mapped to one; else the
// X-Scope-OrgID header (x-scope-orgid gRPC metadata); else Default. An
// identity's tenant wins over the header, which is then ignored, not
// refused: that is what the authenticating proxies in front of Mimir and
// Loki (GEM's gateway, nginx or oauth2-proxy set-ups) do — they overwrite
// X-Scope-OrgID with the tenant they authenticated, whatever the client
// sent — so clients written for them keep working.
//
// IDs are validated as Mimir and Cortex do (dskit's tenant.ValidTenantID):
// at most 150 bytes of [a-zA-Z0-9!-_.*'()], and neither "." nor "..".
// A "|" list (a multi-tenant query in Mimir and Loki) is refused.
package tenant

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc/metadata"

	"github.com/pharos-obs/pharos/internal/auth"
)

// Default is the tenant of requests that name none. It is the bus's
// default tenant (bus.DefaultTenant, sent as Pharos-Tenant), so data
// written before tenancy existed stays the default tenant's.
const Default = "anonymous"

// Header carries the tenant of an HTTP request, as in Mimir, Loki and
// Tempo.
const Header = "X-Scope-OrgID"

// MetadataKey carries the tenant of a gRPC request (lower case, as gRPC
// metadata keys are).
const MetadataKey = "x-scope-orgid"

// Label marks, in the metrics store, the series of a tenant other than
// the default one (see storage/metrics.TenantLabel). Queries may not
// match on it.
const Label = "__pharos_tenant__"

// MaxLength is the longest tenant ID, in bytes (dskit's limit).
const MaxLength = 150

// ErrInvalid is wrapped by every validation error; such a request is
// answered 400 (InvalidArgument on gRPC).
var ErrInvalid = errors.New("invalid tenant ID")

// ErrMultiple is wrapped by the error for a "|" list of tenants.
var ErrMultiple = errors.New("multi-tenant queries are not supported")

// Validate reports whether id is a valid tenant ID, with an error that
// names the problem.
func Validate(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", ErrInvalid)
	case strings.Contains(id, "|"):
		return fmt.Errorf("%w: %w (%s lists several tenants with '|')", ErrInvalid, ErrMultiple, strconv.QuoteToASCII(id))
	case len(id) > MaxLength:
		return fmt.Errorf("%w: %d bytes long, over the limit of %d", ErrInvalid, len(id), MaxLength)
	case id == "." || id == "..":
		return fmt.Errorf("%w %q: not allowed", ErrInvalid, id)
	}
	for i := 0; i < len(id); i++ {
		if !validByte(id[i]) {
			return fmt.Errorf("%w %s: byte %d (0x%02x) is not one of a-z, A-Z, 0-9 and !-_.*'()",
				ErrInvalid, strconv.QuoteToASCII(id), i, id[i])
		}
	}
	return nil
}

// validByte is dskit's tenant.ValidTenantID character set.
func validByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '-', '_', '.', '*', '\'', '(', ')':
		return true
	}
	return false
}

// parse validates a header or metadata value: surrounding space is
// dropped, and empty means none.
func parse(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	if err := Validate(v); err != nil {
		return "", err
	}
	return v, nil
}

// fromIdentity returns the tenant of the authenticated identity in ctx;
// an identity's tenant comes from the operator's identities file, and is
// validated like a header all the same.
func fromIdentity(ctx context.Context) (string, bool, error) {
	t := auth.TenantFrom(ctx)
	if t == "" {
		return "", false, nil
	}
	if err := Validate(t); err != nil {
		return "", true, fmt.Errorf("the identity's tenant: %w", err)
	}
	return t, true, nil
}

// Resolve returns the tenant of r: its identity's, else its X-Scope-OrgID
// header's, else Default. The error wraps ErrInvalid.
func Resolve(r *http.Request) (string, error) {
	if t, ok, err := fromIdentity(r.Context()); ok {
		return t, err
	}
	vs := r.Header.Values(Header)
	if len(vs) > 1 {
		return "", fmt.Errorf("%s: %w: the header is given %d times", Header, ErrInvalid, len(vs))
	}
	var v string
	if len(vs) == 1 {
		v = vs[0]
	}
	t, err := parse(v)
	if err != nil {
		return "", fmt.Errorf("%s: %w", Header, err)
	}
	if t == "" {
		return Default, nil
	}
	return t, nil
}

// ResolveGRPC is Resolve for a gRPC request: its identity's tenant, else
// the x-scope-orgid metadata, else Default.
func ResolveGRPC(ctx context.Context) (string, error) {
	if t, ok, err := fromIdentity(ctx); ok {
		return t, err
	}
	var v string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		vs := md.Get(MetadataKey)
		if len(vs) > 1 {
			return "", fmt.Errorf("%s: %w: given %d times", MetadataKey, ErrInvalid, len(vs))
		}
		if len(vs) == 1 {
			v = vs[0]
		}
	}
	t, err := parse(v)
	if err != nil {
		return "", fmt.Errorf("%s: %w", MetadataKey, err)
	}
	if t == "" {
		return Default, nil
	}
	return t, nil
}

// FromHeader returns the tenant an internal call names in X-Scope-OrgID
// (Default when none), ignoring the caller's identity: the query role
// forwards the tenant it resolved for its own client, and authenticates
// with the internal credential, which must not be mapped to a tenant.
func FromHeader(h http.Header) (string, error) {
	t, err := parse(h.Get(Header))
	if err != nil {
		return "", fmt.Errorf("%s: %w", Header, err)
	}
	if t == "" {
		return Default, nil
	}
	return t, nil
}

// Key is a tenant's key in the log and trace stores and their sinks,
// whose default tenant is "": Default maps to "", any other ID to itself.
func Key(id string) string {
	if id == Default {
		return ""
	}
	return id
}

// Transport sets X-Scope-OrgID on every request to the tenant of its
// context, when it has one: the query role forwards its client's tenant
// to the aggregators this way.
func Transport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return transport{rt}
}

type transport struct{ rt http.RoundTripper }

func (t transport) RoundTrip(r *http.Request) (*http.Response, error) {
	id, ok := r.Context().Value(ctxKey{}).(string)
	if !ok || id == "" {
		return t.rt.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Set(Header, id)
	return t.rt.RoundTrip(r)
}

type ctxKey struct{}

// WithContext returns ctx carrying the tenant id.
func WithContext(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the tenant ctx carries, Default when none. Storage
// reads scope themselves to it, so a read that has no tenant in its
// context (rule evaluation, the self-scrape) reads the default tenant's
// data only.
func FromContext(ctx context.Context) string {
	if id, ok := ctx.Value(ctxKey{}).(string); ok && id != "" {
		return id
	}
	return Default
}
