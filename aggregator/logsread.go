package aggregator

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/pharos-obs/pharos/internal/bus/codec"
	"github.com/pharos-obs/pharos/storage/logs"
)

// Internal log read API paths, served by every aggregator to queriers.
// Selections travel back in the bus's own log encoding (OTLP logs,
// compressed); look-ups as small JSON documents.
const (
	LogsSelectPath      = "/internal/v1/logs/select"
	LogsLabelNamesPath  = "/internal/v1/logs/labels"
	LogsLabelValuesPath = "/internal/v1/logs/label_values"
	LogsSeriesPath      = "/internal/v1/logs/series"
	// LogsStreamPath answers a select without a limit as a sequence of
	// frames (uvarint length, then a message in the bus's log encoding),
	// ended by a zero length, so that a metric query over any range reads
	// each entry once without the answer being held whole on either side.
	LogsStreamPath = "/internal/v1/logs/stream"
)

// streamFrameBytes is how many line bytes go into one frame of a stream.
const streamFrameBytes = 1 << 20

// LogsSelectRequest is the body of a select: logs.SelectParams with the
// matchers as a selector string.
type LogsSelectRequest struct {
	Tenant      string            `json:"tenant"`
	Selector    string            `json:"selector"`
	Start       int64             `json:"start"`
	End         int64             `json:"end"`
	LineFilters []logs.LineFilter `json:"line_filters,omitempty"`
	Limit       int               `json:"limit"`
	Direction   logs.Direction    `json:"direction"`
}

// LogsLookupRequest is the body of a label or series look-up.
type LogsLookupRequest struct {
	Tenant   string `json:"tenant"`
	Name     string `json:"name,omitempty"`
	Selector string `json:"selector,omitempty"`
	Start    int64  `json:"start"`
	End      int64  `json:"end"`
}

// maxLogsRequestBytes bounds a request body; selectors are short.
const maxLogsRequestBytes = 1 << 20

// RegisterLogsReadAPI mounts the internal log read API on mux.
func RegisterLogsReadAPI(mux *http.ServeMux, q logs.Querier, logger *slog.Logger) {
	mux.HandleFunc("POST "+LogsSelectPath, func(w http.ResponseWriter, r *http.Request) {
		var req LogsSelectRequest
		if !decodeJSONRequest(w, r, &req) {
			return
		}
		ms, err := parseSelector(req.Selector)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p := logs.SelectParams{Tenant: req.Tenant, Matchers: ms, Start: req.Start, End: req.End,
			LineFilters: req.LineFilters, Limit: req.Limit, Direction: req.Direction}
		if err := p.Validate(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		streams, err := q.Select(r.Context(), p)
		if err != nil {
			logger.Warn("log select failed", "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		enc := codec.NewLogsEncoder(codec.CompressionSnappy)
		for i := range streams {
			enc.StartStream(streams[i].Labels)
			for j := range streams[i].Entries {
				enc.AddEntry(&streams[i].Entries[j])
			}
		}
		body, err := enc.Finish()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Header().Set("Pharos-Encoding", enc.Encoding())
		_, _ = w.Write(body)
	})
	if st, ok := q.(logs.Streamer); ok {
		mux.HandleFunc("POST "+LogsStreamPath, func(w http.ResponseWriter, r *http.Request) {
			var req LogsSelectRequest
			if !decodeJSONRequest(w, r, &req) {
				return
			}
			ms, err := parseSelector(req.Selector)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			p := logs.SelectParams{Tenant: req.Tenant, Matchers: ms, Start: req.Start, End: req.End, LineFilters: req.LineFilters}
			if err := p.Validate(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Pharos-Encoding", codec.NewLogsEncoder(codec.CompressionSnappy).Encoding())
			if err := streamLogs(r.Context(), w, st, p); err != nil {
				// The status is sent: the missing end frame tells the reader.
				logger.Warn("log stream failed", "err", err)
			}
		})
	}
	lookup := func(w http.ResponseWriter, r *http.Request, fn func(req LogsLookupRequest, p logs.LabelParams) (any, error)) {
		var req LogsLookupRequest
		if !decodeJSONRequest(w, r, &req) {
			return
		}
		p := logs.LabelParams{Tenant: req.Tenant, Start: req.Start, End: req.End}
		if req.Selector != "" {
			ms, err := parseSelector(req.Selector)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			p.Matchers = ms
		}
		out, err := fn(req, p)
		if err != nil {
			logger.Warn("log label look-up failed", "path", r.URL.Path, "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	}
	mux.HandleFunc("POST "+LogsLabelNamesPath, func(w http.ResponseWriter, r *http.Request) {
		lookup(w, r, func(_ LogsLookupRequest, p logs.LabelParams) (any, error) {
			return q.LabelNames(r.Context(), p)
		})
	})
	mux.HandleFunc("POST "+LogsLabelValuesPath, func(w http.ResponseWriter, r *http.Request) {
		lookup(w, r, func(req LogsLookupRequest, p logs.LabelParams) (any, error) {
			if req.Name == "" {
				return nil, fmt.Errorf("missing label name")
			}
			return q.LabelValues(r.Context(), req.Name, p)
		})
	})
	mux.HandleFunc("POST "+LogsSeriesPath, func(w http.ResponseWriter, r *http.Request) {
		lookup(w, r, func(_ LogsLookupRequest, p logs.LabelParams) (any, error) {
			sets, err := q.Series(r.Context(), p)
			if err != nil {
				return nil, err
			}
			out := make([]map[string]string, len(sets))
			for i, ls := range sets {
				out[i] = ls.Map()
			}
			return out, nil
		})
	})
}

// streamLogs writes st's entries for p as frames, then the end frame.
func streamLogs(ctx context.Context, w http.ResponseWriter, st logs.Streamer, p logs.SelectParams) error {
	enc := codec.NewLogsEncoder(codec.CompressionSnappy)
	flusher, _ := w.(http.Flusher)
	var last labels.Labels
	var hdr []byte
	frame := func() error {
		if enc.Len() == 0 {
			return nil
		}
		body, err := enc.Finish()
		if err != nil {
			return err
		}
		hdr = binary.AppendUvarint(hdr[:0], uint64(len(body)))
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		if _, err := w.Write(body); err != nil {
			return err
		}
		enc.Reset()
		last = labels.EmptyLabels()
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	}
	err := st.SelectStream(ctx, p, func(ls labels.Labels, e *logs.Entry) error {
		if enc.Len() == 0 || !labels.Equal(ls, last) {
			enc.StartStream(ls)
			last = ls
		}
		enc.AddEntry(e)
		if enc.LineBytes() >= streamFrameBytes {
			return frame()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := frame(); err != nil {
		return err
	}
	_, err = w.Write([]byte{0})
	return err
}

func decodeJSONRequest(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxLogsRequestBytes+1))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return false
	}
	if len(body) > maxLogsRequestBytes {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		http.Error(w, "decode request: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

// parseSelector parses a stream selector such as {app="api"}.
func parseSelector(s string) ([]*labels.Matcher, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty stream selector")
	}
	return selectorParser.ParseMetricSelector(s)
}

var selectorParser = parser.NewParser(parser.Options{})
