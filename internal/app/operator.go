package app

import (
	"net/http"
	"strings"

	"github.com/pharos-obs/pharos/internal/auth"
	"github.com/pharos-obs/pharos/internal/tenant"
)

// operatorPaths are the routes that describe the whole process rather
// than one tenant's data: its metrics (other tenants' names are label
// values there), scrape targets, tailed files, notification receivers,
// the ring and gossip, and the reload. An identity mapped to a tenant
// other than the default one is a tenant's client, not the operator's,
// and gets 403 on them; identities without a tenant (the operator's
// Prometheus, the internal credential, people) keep them.
var operatorPaths = []string{
	"/metrics",
	"/-/reload",
	"/cluster/status",
	"/memberlist",
	"/api/v1/targets",
	"/api/v1/status/tail",
	"/api/v1/status/notifications",
	"/debug/pprof",
}

// isOperatorPath reports whether p is one of operatorPaths (or below
// one).
func isOperatorPath(p string) bool {
	for _, op := range operatorPaths {
		if p == op || strings.HasPrefix(p, op+"/") {
			return true
		}
	}
	return false
}

// operatorGate refuses operator routes to tenants' identities. Without
// authentication there is no identity, and a tenant named only by
// X-Scope-OrgID could leave the header out: the gate does not look at it.
func operatorGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t := auth.TenantFrom(r.Context()); t != "" && t != tenant.Default && isOperatorPath(r.URL.Path) {
			http.Error(w, "forbidden: "+r.URL.Path+" describes the whole process (every tenant); the identity is mapped to tenant "+t, http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
