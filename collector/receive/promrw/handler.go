// Package promrw receives Prometheus remote write 1.0 and 2.0 at
// /api/v1/write and appends it, through the receive.Intake's validation,
// to the agent's batcher.
//
// Status codes follow the specifications:
//
//   - 204: everything was written.
//   - 400: the body is not a valid message, or some series or samples
//     broke an ingestion rule. The message names each refused series and
//     its rule. What was valid is committed in both versions: in 2.0 this
//     is the spec's partial write, and the X-Prometheus-Remote-Write-*-Written
//     headers count what was written; 1.0 has no way to say so, so the
//     sender sees a 400 for the whole request and drops it (4xx is not
//     retried), while its valid series are already stored — nothing valid
//     is lost and nothing is written twice.
//   - 405: not a POST. 415: a content type or encoding this endpoint does
//     not take. 413: a body over agent.receive.max_request_bytes, or one
//     that declares more than agent.receive.max_decompressed_bytes once
//     decompressed (refused before it is allocated).
//   - 429 with Retry-After: agent.receive.max_inflight_requests are being
//     handled; the body is not read.
//   - 503 with Retry-After: the batcher refused the commit (the agent is
//     stopping); nothing of the request was kept, the sender retries.
package promrw

import (
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/internal/tenant"
)

// Path is where remote write is served.
const Path = "/api/v1/write"

// Remote write headers and content types.
const (
	contentTypeProtobuf = "application/x-protobuf"
	protoV1             = "prometheus.WriteRequest"
	protoV2             = "io.prometheus.write.v2.Request"

	headerSamplesWritten    = "X-Prometheus-Remote-Write-Samples-Written"
	headerHistogramsWritten = "X-Prometheus-Remote-Write-Histograms-Written"
	headerExemplarsWritten  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// Handler serves remote write 1.0 and 2.0. It is safe for concurrent use.
type Handler struct {
	in      *receive.Intake
	logger  *slog.Logger
	writers sync.Pool // *writer
	meta    metaCache
}

// NewHandler returns a remote write handler appending through in.
func NewHandler(in *receive.Intake, logger *slog.Logger) *Handler {
	h := &Handler{in: in, logger: logger}
	h.writers.New = func() any {
		return &writer{
			sb:     labels.NewScratchBuilder(16),
			exSB:   labels.NewScratchBuilder(4),
			intern: map[string]string{},
		}
	}
	return h
}

// Register serves the handler at Path on mux.
func (h *Handler) Register(mux *http.ServeMux) { mux.Handle(Path, h) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	proto := receive.ProtocolRemoteWrite
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.respond(w, proto, http.StatusMethodNotAllowed, "remote write takes POST requests", stats{}, time.Time{})
		return
	}
	v2, err := parseContentType(r.Header.Get("Content-Type"))
	if err != nil {
		h.respond(w, proto, http.StatusUnsupportedMediaType, err.Error(), stats{}, time.Time{})
		return
	}
	proto = receive.ProtocolRemoteWriteV1
	if v2 {
		proto = receive.ProtocolRemoteWriteV2
	}
	// Both versions are snappy-compressed; Prometheus's receiver also
	// takes a missing Content-Encoding as snappy.
	if enc := strings.TrimSpace(r.Header.Get("Content-Encoding")); enc != "" && !strings.EqualFold(enc, "snappy") {
		h.respond(w, proto, http.StatusUnsupportedMediaType,
			fmt.Sprintf("content encoding %q is not supported; remote write bodies are snappy-compressed (block format)", enc), stats{}, time.Time{})
		return
	}
	id, err := tenant.Resolve(r)
	if err != nil {
		h.respond(w, proto, http.StatusBadRequest, err.Error(), stats{}, time.Time{})
		return
	}
	if err := h.in.Admit(receive.SignalMetrics); err != nil {
		// Refused unread: closing the connection spares the server reading
		// (discarding) the body.
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", h.in.RetryAfterHeader())
		h.respond(w, proto, http.StatusTooManyRequests, err.Error(), stats{}, time.Time{})
		return
	}
	defer h.in.Release()
	start := time.Now()
	bodyRead := h.in.StartBodyDeadline(w)
	body, err := h.in.ReadBody(r, receive.EncodingSnappy, proto)
	if err != nil {
		// The deadline stays: the server must not wait for the rest of a
		// body it will not read.
		w.Header().Set("Connection", "close")
		h.respond(w, proto, receive.HTTPStatus(err), err.Error(), stats{}, start)
		return
	}
	bodyRead()
	defer body.Release()

	wr := h.writers.Get().(*writer)
	defer func() {
		wr.reset()
		h.writers.Put(wr)
	}()
	if v2 {
		err = wr.req.decodeV2(body.Bytes())
	} else {
		err = wr.req.decodeV1(body.Bytes())
	}
	if err != nil {
		h.respond(w, proto, http.StatusBadRequest, fmt.Sprintf("decode %s: %v", messageName(v2), err), stats{}, start)
		return
	}
	if !v2 {
		h.meta.update(wr.req.metadata)
	}

	if err := h.write(tenant.WithContext(r.Context(), id), wr); err != nil {
		if code, retryAfter, ok := receive.LimitResponse(err); ok {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			h.respond(w, proto, code, "not stored: "+err.Error(), stats{}, start)
			return
		}
		h.logger.Warn("remote write not stored; the sender will retry", "protocol", proto, "err", err)
		w.Header().Set("Retry-After", h.in.RetryAfterHeader())
		h.respond(w, proto, http.StatusServiceUnavailable, "not stored, retry later: "+err.Error(), stats{}, start)
		return
	}
	h.in.CountAccepted(proto, wr.st.samples, wr.st.histograms, wr.st.exemplars)
	if wr.rej.n > 0 {
		h.logger.Debug("remote write partly rejected", "protocol", proto, "rejected", wr.rej.n,
			"written_samples", wr.st.samples, "written_histograms", wr.st.histograms)
		h.respond(w, proto, http.StatusBadRequest, wr.rej.message(wr.st), wr.st, start)
		return
	}
	h.respond(w, proto, http.StatusNoContent, "", wr.st, start)
}

func messageName(v2 bool) string {
	if v2 {
		return "remote write 2.0 " + protoV2
	}
	return "remote write 1.0 " + protoV1
}

// respond writes the status, the 2.0 written-headers (which the spec asks
// for on every answer to a 2.0 request, errors included) and, for errors,
// a plain-text message.
func (h *Handler) respond(w http.ResponseWriter, proto receive.Protocol, code int, msg string, st stats, start time.Time) {
	if proto == receive.ProtocolRemoteWriteV2 {
		hd := w.Header()
		hd.Set(headerSamplesWritten, strconv.Itoa(st.samples))
		hd.Set(headerHistogramsWritten, strconv.Itoa(st.histograms))
		hd.Set(headerExemplarsWritten, strconv.Itoa(st.exemplars))
	}
	h.in.ObserveRequest(proto, strconv.Itoa(code), start)
	if code < 300 {
		w.WriteHeader(code)
		return
	}
	http.Error(w, msg, code)
}

var errContentType = errors.New("unsupported content type")

// parseContentType tells a 1.0 request from a 2.0 one, as the 2.0 spec's
// content negotiation says: application/x-protobuf with proto= naming the
// message; no parameter (or no header, as Prometheus accepts) means 1.0.
func parseContentType(ct string) (v2 bool, err error) {
	if strings.TrimSpace(ct) == "" {
		return false, nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != contentTypeProtobuf {
		return false, fmt.Errorf("%w %q: remote write takes %s (1.0) or %s;proto=%s (2.0)", errContentType, ct, contentTypeProtobuf, contentTypeProtobuf, protoV2)
	}
	switch params["proto"] {
	case "", protoV1:
		return false, nil
	case protoV2:
		return true, nil
	}
	return false, fmt.Errorf("%w %q: unknown remote write message %q; this receiver takes %s and %s", errContentType, ct, params["proto"], protoV1, protoV2)
}
