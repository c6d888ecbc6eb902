package aggregator

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/storage/traces"
)

// Internal trace read API paths, served by every aggregator to queriers.
// A trace travels back as OTLP protobuf; searches and look-ups as JSON.
const (
	TracesTracePath     = "/internal/v1/traces/trace"
	TracesManyPath      = "/internal/v1/traces/traces"
	TracesSearchPath    = "/internal/v1/traces/search"
	TracesTagNamesPath  = "/internal/v1/traces/tags"
	TracesTagValuesPath = "/internal/v1/traces/tag_values"
	TracesServicesPath  = "/internal/v1/traces/services"
	TracesOpsPath       = "/internal/v1/traces/operations"
)

// ServicesRequest asks for service names, or a service's operations.
type ServicesRequest struct {
	Tenant  string    `json:"tenant"`
	Service string    `json:"service,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
}

// TraceRequest asks for one trace.
type TraceRequest struct {
	Tenant  string         `json:"tenant"`
	TraceID traces.TraceID `json:"trace_id"`
	Start   time.Time      `json:"start"`
	End     time.Time      `json:"end"`
}

// TracesRequest asks for several whole traces at once; the answer is one
// OTLP TracesData holding the spans of all of them (each span carries its
// trace ID).
type TracesRequest struct {
	Tenant   string           `json:"tenant"`
	TraceIDs []traces.TraceID `json:"trace_ids"`
	Start    time.Time        `json:"start"`
	End      time.Time        `json:"end"`
}

// MaxTracesPerRequest bounds TracesRequest.TraceIDs.
const MaxTracesPerRequest = 1000

// TagRequest asks for tag names, or a tag's values when Tag is set.
type TagRequest struct {
	Tag    string           `json:"tag,omitempty"`
	Params traces.TagParams `json:"params"`
}

// RegisterTracesReadAPI mounts the internal trace read API on mux.
func RegisterTracesReadAPI(mux *http.ServeMux, q traces.Querier, logger *slog.Logger) {
	fail := func(w http.ResponseWriter, r *http.Request, err error) {
		logger.Warn("trace read failed", "path", r.URL.Path, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
	mux.HandleFunc("POST "+TracesTracePath, func(w http.ResponseWriter, r *http.Request) {
		var req TraceRequest
		if !decodeJSONRequest(w, r, &req) {
			return
		}
		td, err := q.Trace(r.Context(), req.Tenant, req.TraceID, req.Start, req.End)
		if err != nil {
			fail(w, r, err)
			return
		}
		body, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		if err != nil {
			fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(body)
	})
	mux.HandleFunc("POST "+TracesManyPath, func(w http.ResponseWriter, r *http.Request) {
		var req TracesRequest
		if !decodeJSONRequest(w, r, &req) {
			return
		}
		if len(req.TraceIDs) > MaxTracesPerRequest {
			http.Error(w, fmt.Sprintf("%d trace IDs, at most %d a request", len(req.TraceIDs), MaxTracesPerRequest), http.StatusBadRequest)
			return
		}
		var tds []ptrace.Traces
		if m, ok := q.(traces.TracesQuerier); ok {
			var err error
			if tds, err = m.Traces(r.Context(), req.Tenant, req.TraceIDs, req.Start, req.End); err != nil {
				fail(w, r, err)
				return
			}
		} else {
			for _, id := range req.TraceIDs {
				td, err := q.Trace(r.Context(), req.Tenant, id, req.Start, req.End)
				if err != nil {
					fail(w, r, err)
					return
				}
				tds = append(tds, td)
			}
		}
		all := ptrace.NewTraces()
		seen := make(map[traces.TraceID]bool, len(req.TraceIDs))
		for i, td := range tds {
			if id := req.TraceIDs[i]; !seen[id] { // an ID asked twice is sent once
				seen[id] = true
				td.ResourceSpans().MoveAndAppendTo(all.ResourceSpans())
			}
		}
		body, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(all)
		if err != nil {
			fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(body)
	})
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("POST "+TracesSearchPath, func(w http.ResponseWriter, r *http.Request) {
		var p traces.SearchParams
		if !decodeJSONRequest(w, r, &p) {
			return
		}
		res, err := q.Search(r.Context(), p)
		if err != nil {
			fail(w, r, err)
			return
		}
		writeJSON(w, res)
	})
	mux.HandleFunc("POST "+TracesTagNamesPath, func(w http.ResponseWriter, r *http.Request) {
		var req TagRequest
		if !decodeJSONRequest(w, r, &req) {
			return
		}
		res, err := q.TagNames(r.Context(), req.Params)
		if err != nil {
			fail(w, r, err)
			return
		}
		writeJSON(w, res)
	})
	mux.HandleFunc("POST "+TracesServicesPath, func(w http.ResponseWriter, r *http.Request) {
		var req ServicesRequest
		if !decodeJSONRequest(w, r, &req) {
			return
		}
		res, err := q.Services(r.Context(), req.Tenant, req.Start, req.End)
		if err != nil {
			fail(w, r, err)
			return
		}
		writeJSON(w, res)
	})
	mux.HandleFunc("POST "+TracesOpsPath, func(w http.ResponseWriter, r *http.Request) {
		var req ServicesRequest
		if !decodeJSONRequest(w, r, &req) {
			return
		}
		res, err := q.Operations(r.Context(), req.Tenant, req.Service, req.Start, req.End)
		if err != nil {
			fail(w, r, err)
			return
		}
		writeJSON(w, res)
	})
	mux.HandleFunc("POST "+TracesTagValuesPath, func(w http.ResponseWriter, r *http.Request) {
		var req TagRequest
		if !decodeJSONRequest(w, r, &req) {
			return
		}
		if req.Tag == "" {
			http.Error(w, "missing tag", http.StatusBadRequest)
			return
		}
		res, err := q.TagValues(r.Context(), req.Tag, req.Params)
		if err != nil {
			fail(w, r, err)
			return
		}
		writeJSON(w, res)
	})
}
