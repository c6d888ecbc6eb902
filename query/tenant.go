package query

import (
	"encoding/json"
	"net/http"

	"github.com/pharos-obs/pharos/internal/tenant"
)

// WithTenant resolves the tenant of each request (tenant.Resolve: the
// identity's, else X-Scope-OrgID, else the default tenant) and serves h
// with it in the request's context, where every read of the metrics path
// finds it: the local store scopes itself to it, the fan-out sends it to
// the aggregators. A malformed tenant is refused with a Prometheus-style
// 400 (bad_data).
func WithTenant(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := tenant.Resolve(r)
		if err != nil {
			writeBadData(w, err.Error())
			return
		}
		h.ServeHTTP(w, r.WithContext(tenant.WithContext(r.Context(), id)))
	})
}

func writeBadData(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": "bad_data", "error": msg})
}
