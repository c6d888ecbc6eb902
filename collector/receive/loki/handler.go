// Package loki receives Loki's push API, POST /loki/api/v1/push, as
// Promtail, Alloy, the Docker driver and Loki clients send it, and hands
// the streams, through the receive.LogsIntake's checks, to the agent's
// log publisher.
//
// Formats, chosen by Content-Type as Loki does:
//
//   - application/x-protobuf (or no Content-Type): a snappy-compressed
//     (block format) logproto.PushRequest; Content-Encoding absent or
//     "snappy".
//   - application/json: Loki's JSON push format, plain, gzip or zstd.
//
// Status codes:
//
//   - 204: every entry is stored (the log publisher has it durably).
//   - 400: the body is not a valid push request, a stream or entry breaks
//     an ingestion rule (agent.receive.logs.*), the tenant ID is malformed,
//     or the publisher refused the data for good. Nothing of the request
//     is stored (as in Loki, the sender drops it: 4xx is not retried);
//     the message names the streams and the rules.
//   - 405: not a POST. 415: a content type or encoding this endpoint does
//     not take. 413: a body over agent.receive.max_request_bytes, or one
//     that inflates (or, snappy, declares it inflates) to more than
//     agent.receive.max_decompressed_bytes, refused before it is
//     allocated; or entries that decode to more than that.
//   - 429 with Retry-After: agent.receive.max_inflight_requests are being
//     handled; the body is not read.
//   - 503 with Retry-After: the publisher could not store the streams
//     (bus unavailable, timeout); nothing was kept, the sender retries.
//   - 499 (not seen by anyone): the sender went away while the streams
//     were being stored.
package loki

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

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/internal/overrides"
	"github.com/pharos-obs/pharos/internal/tenant"
)

// Path is where Loki push is served.
const Path = "/loki/api/v1/push"

const (
	contentTypeJSON     = "application/json"
	contentTypeProtobuf = "application/x-protobuf"

	// statusClientClosed is nginx's and Loki's code for a request whose
	// sender went away; only the metrics see it.
	statusClientClosed = 499
)

// Handler serves Loki push. It is safe for concurrent use.
type Handler struct {
	li       *receive.LogsIntake
	in       *receive.Intake
	logger   *slog.Logger
	decoders sync.Pool // *decoder
}

// NewHandler returns a Loki push handler checking and pushing through li.
func NewHandler(li *receive.LogsIntake, logger *slog.Logger) *Handler {
	h := &Handler{li: li, in: li.Intake(), logger: logger}
	budget := h.in.Config().MaxDecompressedBytes
	h.decoders.New = func() any { return newDecoder(budget) }
	return h
}

// Register serves the handler at Path on mux.
func (h *Handler) Register(mux *http.ServeMux) { mux.Handle(Path, h) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	proto := receive.ProtocolLoki
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.respond(w, proto, http.StatusMethodNotAllowed, "Loki push takes POST requests", time.Time{})
		return
	}
	proto, enc, err := parseHeaders(r.Header)
	if err != nil {
		h.respond(w, proto, http.StatusUnsupportedMediaType, err.Error(), time.Time{})
		return
	}
	id, err := tenant.Resolve(r)
	if err != nil {
		h.respond(w, proto, http.StatusBadRequest, err.Error(), time.Time{})
		return
	}
	if err := h.in.Admit(receive.SignalLogs); err != nil {
		// Refused unread: closing the connection spares the server reading
		// (discarding) the body.
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", h.in.RetryAfterHeader())
		h.respond(w, proto, http.StatusTooManyRequests, err.Error(), time.Time{})
		return
	}
	defer h.in.Release()
	start := time.Now()
	bodyRead := h.in.StartBodyDeadline(w)
	body, err := h.in.ReadBody(r, enc, proto)
	if err != nil {
		// The deadline stays: the server must not wait for the rest of a
		// body it will not read.
		w.Header().Set("Connection", "close")
		h.respond(w, proto, receive.HTTPStatus(err), err.Error(), start)
		return
	}
	bodyRead()
	defer body.Release()

	d := h.decoders.Get().(*decoder)
	defer func() {
		d.reset()
		h.decoders.Put(d)
	}()
	if proto == receive.ProtocolLokiJSON {
		err = d.decodeJSON(body.Bytes())
	} else {
		err = d.decodeProtobuf(body.Bytes())
	}
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, receive.ErrTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		h.respond(w, proto, code, fmt.Sprintf("decode Loki push (%s): %v", formatName(proto), err), start)
		return
	}
	streams := d.result()
	total := receive.CountEntries(streams)
	streams, rej := h.li.CheckStreams(tenant.Key(id), streams)
	if rej.Errors > 0 {
		// Loki's default: the whole request is refused, so that the
		// sender's error names every problem and nothing is half-stored.
		h.logger.Debug("Loki push rejected", "protocol", proto, "tenant", id, "rejected_entries", rej.Entries, "entries", total)
		h.respond(w, proto, http.StatusBadRequest, "push rejected, nothing stored: "+rej.Message(total), start)
		return
	}
	if err := h.li.Push(r.Context(), proto, tenant.Key(id), streams); err != nil {
		switch {
		case r.Context().Err() != nil:
			h.respond(w, proto, statusClientClosed, "the sender went away: "+err.Error(), start)
		case errors.Is(err, receive.ErrLogsRejected):
			h.logger.Debug("Loki push refused by the log publisher", "protocol", proto, "tenant", id, "err", err)
			h.respond(w, proto, http.StatusBadRequest, "push rejected, nothing stored: "+err.Error(), start)
		case errors.Is(err, overrides.ErrLimited):
			code, retryAfter, _ := receive.LimitResponse(err)
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			h.respond(w, proto, code, "push refused, nothing stored: "+err.Error(), start)
		default:
			h.logger.Warn("Loki push not stored; the sender will retry", "protocol", proto, "tenant", id, "err", err)
			w.Header().Set("Retry-After", h.in.RetryAfterHeader())
			h.respond(w, proto, http.StatusServiceUnavailable, "not stored, retry later: "+err.Error(), start)
		}
		return
	}
	h.respond(w, proto, http.StatusNoContent, "", start)
}

// respond counts the request and writes the status, with a plain-text
// message for errors (as Loki).
func (h *Handler) respond(w http.ResponseWriter, proto receive.Protocol, code int, msg string, start time.Time) {
	h.in.ObserveRequest(proto, strconv.Itoa(code), start)
	if code < 300 {
		w.WriteHeader(code)
		return
	}
	http.Error(w, msg, code)
}

// parseHeaders picks the format from Content-Type (no Content-Type is
// protobuf, as in Loki) and checks Content-Encoding against it.
func parseHeaders(hd http.Header) (receive.Protocol, receive.Encoding, error) {
	ct := hd.Get("Content-Type")
	mt := ""
	if strings.TrimSpace(ct) != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			mt = ct
		}
	}
	ce := hd.Get("Content-Encoding")
	switch mt {
	case contentTypeJSON:
		enc, err := receive.ParseEncoding(ce)
		if err == nil && enc == receive.EncodingSnappy {
			err = fmt.Errorf("%w %q: JSON pushes take gzip or zstd", receive.ErrUnsupportedEncoding, ce)
		}
		return receive.ProtocolLokiJSON, enc, err
	case "", contentTypeProtobuf:
		// The body is snappy-compressed whether or not the sender says so.
		if enc := strings.TrimSpace(ce); enc != "" && !strings.EqualFold(enc, "snappy") {
			return receive.ProtocolLokiProtobuf, 0, fmt.Errorf("%w %q: protobuf pushes are snappy-compressed (block format), with no other Content-Encoding", receive.ErrUnsupportedEncoding, ce)
		}
		return receive.ProtocolLokiProtobuf, receive.EncodingSnappy, nil
	}
	return receive.ProtocolLoki, 0, fmt.Errorf("unsupported content type %q: Loki push takes %s (snappy-compressed logproto.PushRequest) or %s", ct, contentTypeProtobuf, contentTypeJSON)
}

func formatName(p receive.Protocol) string {
	if p == receive.ProtocolLokiJSON {
		return "JSON"
	}
	return "protobuf logproto.PushRequest"
}
