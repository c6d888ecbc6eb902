package tenant

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"

	"github.com/pharos-obs/pharos/internal/auth"
	"github.com/pharos-obs/pharos/internal/bus"
)

func TestDefaultIsTheBusDefault(t *testing.T) {
	require.Equal(t, bus.DefaultTenant, Default)
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		id      string
		wantErr string // substring; empty: valid
	}{
		{id: "team-a"},
		{id: "Team_A.prod"},
		{id: "a!b-c_d.e*f'g(h)"},
		{id: "0"},
		{id: "..."},
		{id: strings.Repeat("t", MaxLength)},
		{id: "", wantErr: "empty"},
		{id: ".", wantErr: `".": not allowed`},
		{id: "..", wantErr: `"..": not allowed`},
		{id: strings.Repeat("t", MaxLength+1), wantErr: "151 bytes long, over the limit of 150"},
		{id: "a|b", wantErr: "multi-tenant queries are not supported"},
		{id: "x/y", wantErr: "byte 1 (0x2f)"},
		{id: "../etc", wantErr: "byte 2 (0x2f)"},
		{id: "a b", wantErr: "byte 1 (0x20)"},
		{id: "équipe", wantErr: "byte 0 (0xc3)"},
		{id: "a\x00b", wantErr: "byte 1 (0x00)"},
		{id: "a\xffb", wantErr: "byte 1 (0xff)"},
		{id: "a:b", wantErr: "byte 1 (0x3a)"},
	} {
		t.Run(c.id, func(t *testing.T) {
			err := Validate(c.id)
			if c.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.ErrorIs(t, err, ErrInvalid)
			require.Contains(t, err.Error(), c.wantErr)
		})
	}
	require.ErrorIs(t, Validate("a|b"), ErrMultiple)
}

func TestResolve(t *testing.T) {
	withTenant := func(tenant string) context.Context {
		return auth.WithIdentity(context.Background(), auth.Identity{Name: "u", Method: auth.MethodBearer, Tenant: tenant})
	}
	for _, c := range []struct {
		name    string
		ctx     context.Context
		headers []string
		want    string
		wantErr string
	}{
		{name: "none", want: Default},
		{name: "header", headers: []string{"team-a"}, want: "team-a"},
		{name: "header with space", headers: []string{" team-a "}, want: "team-a"},
		{name: "blank header", headers: []string{"  "}, want: Default},
		{name: "default named", headers: []string{Default}, want: Default},
		{name: "identity without tenant", ctx: withTenant(""), headers: []string{"team-b"}, want: "team-b"},
		{name: "identity wins", ctx: withTenant("team-a"), headers: []string{"team-b"}, want: "team-a"},
		{name: "identity wins over a malformed header", ctx: withTenant("team-a"), headers: []string{".."}, want: "team-a"},
		{name: "identity alone", ctx: withTenant("team-a"), want: "team-a"},
		{name: "malformed identity tenant", ctx: withTenant("a/b"), wantErr: "the identity's tenant"},
		{name: "dot", headers: []string{"."}, wantErr: "not allowed"},
		{name: "dot dot", headers: []string{".."}, wantErr: "not allowed"},
		{name: "too long", headers: []string{strings.Repeat("x", 200)}, wantErr: "200 bytes long"},
		{name: "list", headers: []string{"a|b"}, wantErr: "multi-tenant queries are not supported"},
		{name: "slash", headers: []string{"x/y"}, wantErr: "x-scope-orgid"},
		{name: "unicode", headers: []string{"ténant"}, wantErr: "byte 1"},
		{name: "twice", headers: []string{"a", "b"}, wantErr: "given 2 times"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := c.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			r := httptest.NewRequestWithContext(ctx, "GET", "/", nil)
			for _, h := range c.headers {
				r.Header.Add(Header, h)
			}
			md := metadata.MD{}
			for _, h := range c.headers {
				md.Append(MetadataKey, h)
			}
			gctx := metadata.NewIncomingContext(ctx, md)
			for _, res := range []func() (string, error){
				func() (string, error) { return Resolve(r) },
				func() (string, error) { return ResolveGRPC(gctx) },
			} {
				got, err := res()
				if c.wantErr != "" {
					require.Error(t, err)
					require.True(t, errors.Is(err, ErrInvalid), err)
					require.Contains(t, strings.ToLower(err.Error()), strings.ToLower(c.wantErr))
					continue
				}
				require.NoError(t, err)
				require.Equal(t, c.want, got)
			}
		})
	}
}

func TestFromHeaderIgnoresTheIdentity(t *testing.T) {
	r := httptest.NewRequestWithContext(auth.WithIdentity(context.Background(), auth.Identity{Tenant: "internal"}), "GET", "/", nil)
	got, err := FromHeader(r.Header)
	require.NoError(t, err)
	require.Equal(t, Default, got)
	r.Header.Set(Header, "team-a")
	got, err = FromHeader(r.Header)
	require.NoError(t, err)
	require.Equal(t, "team-a", got)
	r.Header.Set(Header, "..")
	_, err = FromHeader(r.Header)
	require.ErrorIs(t, err, ErrInvalid)
}

func TestContext(t *testing.T) {
	require.Equal(t, Default, FromContext(context.Background()))
	require.Equal(t, "team-a", FromContext(WithContext(context.Background(), "team-a")))
	require.Equal(t, Default, FromContext(WithContext(context.Background(), "")))
	require.Equal(t, "", Key(Default))
	require.Equal(t, "team-a", Key("team-a"))
}
