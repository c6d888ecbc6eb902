package aggregator

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/pharos-obs/pharos/internal/tenant"
	mstore "github.com/pharos-obs/pharos/storage/metrics"
)

// Internal read API paths, served by every aggregator to queriers. Samples
// travel as Prometheus remote read (streamed XOR chunks); label look-ups and
// metadata, which remote read lacks, as small JSON documents.
const (
	ReadPath        = "/internal/v1/read"
	LabelNamesPath  = "/internal/v1/labels"
	LabelValuesPath = "/internal/v1/label_values"
	MetadataPath    = "/internal/v1/metadata"
)

// ReadableStore is the local data an aggregator serves. Its reads must be
// scoped to the tenant of their context (tenant.FromContext), as
// storage/metrics.Store's are: the read API puts the tenant a querier
// names in X-Scope-OrgID there, the default tenant when none.
type ReadableStore interface {
	storage.SampleAndChunkQueryable
	Metadata(ctx context.Context, metric string, limit, limitPerMetric int) (map[string][]metadata.Metadata, error)
}

// ReadAPIConfig bounds the internal read API.
type ReadAPIConfig struct {
	SampleLimit      int
	ConcurrencyLimit int
	MaxBytesInFrame  int
}

// RegisterReadAPI mounts the internal read API on mux.
func RegisterReadAPI(mux *http.ServeMux, cfg ReadAPIConfig, store ReadableStore, logger *slog.Logger, reg prometheus.Registerer) {
	p := parser.NewParser(parser.Options{})
	cfgFn := func() config.Config { return config.Config{GlobalConfig: config.DefaultGlobalConfig} }
	mux.Handle("POST "+ReadPath, withTenant(remote.NewReadHandler(logger, reg, store, cfgFn, cfg.SampleLimit, cfg.ConcurrencyLimit, cfg.MaxBytesInFrame)))
	mux.Handle("GET "+LabelNamesPath, withTenant(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveLabels(w, r, p, store, "")
	})))
	mux.Handle("GET "+LabelValuesPath, withTenant(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if name == "" {
			http.Error(w, "missing name", http.StatusBadRequest)
			return
		}
		serveLabels(w, r, p, store, name)
	})))
	mux.Handle("GET "+MetadataPath, withTenant(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, _ := strconv.Atoi(q.Get("limit"))
		md, err := store.Metadata(r.Context(), q.Get("metric"), limit, -1)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, md)
	})))
}

// withTenant serves h with the tenant the querier names in X-Scope-OrgID
// in the request's context (the default tenant when none); a malformed
// one is refused with 400. The caller's identity is not asked: queriers
// call with the internal credential and forward their client's tenant.
func withTenant(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := tenant.FromHeader(r.Header)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.ServeHTTP(w, r.WithContext(tenant.WithContext(r.Context(), id)))
	})
}

// LabelsResponse is the JSON body of the label endpoints.
type LabelsResponse struct {
	Values   []string `json:"values"`
	Warnings []string `json:"warnings,omitempty"`
}

func serveLabels(w http.ResponseWriter, r *http.Request, p parser.Parser, q storage.Queryable, name string) {
	v := r.URL.Query()
	start, end := int64(math.MinInt64), int64(math.MaxInt64)
	if s := v.Get("start"); s != "" {
		start, _ = strconv.ParseInt(s, 10, 64)
	}
	if s := v.Get("end"); s != "" {
		end, _ = strconv.ParseInt(s, 10, 64)
	}
	limit, _ := strconv.Atoi(v.Get("limit"))
	var matcherSets [][]*labels.Matcher
	for _, m := range v["match[]"] {
		ms, err := p.ParseMetricSelector(m)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		matcherSets = append(matcherSets, ms)
	}
	querier, err := q.Querier(start, end)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer querier.Close()
	hints := &storage.LabelHints{Limit: limit}
	var out []string
	var warnings []string
	if len(matcherSets) == 0 {
		matcherSets = [][]*labels.Matcher{nil}
	}
	for _, ms := range matcherSets {
		var vals []string
		var ws annotations.Annotations
		if name == "" {
			vals, ws, err = querier.LabelNames(r.Context(), hints, ms...)
		} else {
			vals, ws, err = querier.LabelValues(r.Context(), name, hints, ms...)
		}
		if errors.Is(err, mstore.ErrTenantLabel) {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		for _, wr := range ws {
			warnings = append(warnings, wr.Error())
		}
		out = append(out, vals...)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if out == nil {
		out = []string{}
	}
	writeJSON(w, LabelsResponse{Values: out, Warnings: warnings})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
