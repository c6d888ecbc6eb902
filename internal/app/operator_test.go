package app

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/auth"
	"github.com/pharos-obs/pharos/internal/tenant"
)

func TestOperatorGate(t *testing.T) {
	h := operatorGate(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for _, tc := range []struct {
		name, path string
		id         *auth.Identity
		want       int
	}{
		{"no authentication", "/metrics", nil, http.StatusTeapot},
		{"operator identity", "/cluster/status", &auth.Identity{Name: "ops"}, http.StatusTeapot},
		{"default tenant's identity", "/api/v1/targets", &auth.Identity{Name: "d", Tenant: tenant.Default}, http.StatusTeapot},
		{"tenant on metrics", "/metrics", &auth.Identity{Name: "a", Tenant: "team-a"}, http.StatusForbidden},
		{"tenant on reload", "/-/reload", &auth.Identity{Name: "a", Tenant: "team-a"}, http.StatusForbidden},
		{"tenant on targets", "/api/v1/targets", &auth.Identity{Name: "a", Tenant: "team-a"}, http.StatusForbidden},
		{"tenant on tail status", "/api/v1/status/tail", &auth.Identity{Name: "a", Tenant: "team-a"}, http.StatusForbidden},
		{"tenant on memberlist", "/memberlist/x", &auth.Identity{Name: "a", Tenant: "team-a"}, http.StatusForbidden},
		{"tenant on its data", "/api/v1/query", &auth.Identity{Name: "a", Tenant: "team-a"}, http.StatusTeapot},
		{"tenant on its rules", "/api/v1/rules", &auth.Identity{Name: "a", Tenant: "team-a"}, http.StatusTeapot},
		{"tenant on pprof", "/debug/pprof/heap", &auth.Identity{Name: "a", Tenant: "team-a"}, http.StatusForbidden},
		{"tenant on a look-alike", "/metricsx", &auth.Identity{Name: "a", Tenant: "team-a"}, http.StatusTeapot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tc.path, nil)
			if tc.id != nil {
				r = r.WithContext(auth.WithIdentity(r.Context(), *tc.id))
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			require.Equal(t, tc.want, rec.Code, rec.Body.String())
		})
	}
}
