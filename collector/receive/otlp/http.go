package otlp

import (
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/pharos-obs/pharos/collector/receive"
)

// The OTLP/HTTP front half the signals share: method, content type and
// encoding checks, admission, body reading, and error answers.

// Content types of OTLP/HTTP.
const (
	contentTypeProtobuf = "application/x-protobuf"
	contentTypeJSON     = "application/json"
)

// httpRequest is an admitted OTLP/HTTP request whose body was read.
type httpRequest struct {
	mt    string // contentTypeProtobuf or contentTypeJSON
	body  *receive.Body
	start time.Time // admission
	in    *receive.Intake
}

// done releases the body and the in-flight slot.
func (h *httpRequest) done() {
	h.body.Release()
	h.in.Release()
}

// readHTTP checks an OTLP/HTTP request (POST, protobuf or JSON,
// uncompressed, gzip or zstd), takes an in-flight slot and reads the
// body. When ok is false it has answered the request; otherwise the
// caller answers and calls done.
func readHTTP(in *receive.Intake, w http.ResponseWriter, r *http.Request) (req *httpRequest, ok bool) {
	proto := receive.ProtocolOTLPHTTP
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		in.ObserveRequest(proto, strconv.Itoa(http.StatusMethodNotAllowed), time.Time{})
		http.Error(w, "OTLP takes POST requests", http.StatusMethodNotAllowed)
		return nil, false
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != contentTypeProtobuf && mt != contentTypeJSON) {
		in.ObserveRequest(proto, strconv.Itoa(http.StatusUnsupportedMediaType), time.Time{})
		http.Error(w, fmt.Sprintf("unsupported content type %q: OTLP/HTTP takes %s or %s", r.Header.Get("Content-Type"), contentTypeProtobuf, contentTypeJSON), http.StatusUnsupportedMediaType)
		return nil, false
	}
	enc, err := receive.ParseEncoding(r.Header.Get("Content-Encoding"))
	if err == nil && enc == receive.EncodingSnappy {
		err = fmt.Errorf("%w %q: OTLP/HTTP takes gzip or zstd", receive.ErrUnsupportedEncoding, "snappy")
	}
	if err != nil {
		writeStatus(in, w, mt, http.StatusUnsupportedMediaType, err.Error(), time.Time{})
		return nil, false
	}
	if err := in.Admit(receive.SignalOfPath(r.URL.Path)); err != nil {
		// Refused unread: closing the connection spares the server reading
		// (discarding) the body.
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", in.RetryAfterHeader())
		writeStatus(in, w, mt, http.StatusTooManyRequests, err.Error(), time.Time{})
		return nil, false
	}
	start := time.Now()
	bodyRead := in.StartBodyDeadline(w)
	body, err := in.ReadBody(r, enc, proto)
	if err != nil {
		in.Release()
		// The deadline stays: the server must not wait for the rest of a
		// body it will not read.
		w.Header().Set("Connection", "close")
		writeStatus(in, w, mt, receive.HTTPStatus(err), err.Error(), start)
		return nil, false
	}
	bodyRead()
	return &httpRequest{mt: mt, body: body, start: start, in: in}, true
}

// writeStatus answers an OTLP/HTTP error: a google.rpc.Status in the
// request's content type, as the spec asks.
func writeStatus(in *receive.Intake, w http.ResponseWriter, mt string, code int, msg string, start time.Time) {
	in.ObserveRequest(receive.ProtocolOTLPHTTP, strconv.Itoa(code), start)
	st := &spb.Status{Code: int32(grpcCode(code)), Message: msg}
	var (
		b   []byte
		err error
	)
	if mt == contentTypeJSON {
		b, err = protojson.Marshal(st)
	} else {
		b, err = proto.Marshal(st)
	}
	if err != nil {
		http.Error(w, msg, code)
		return
	}
	w.Header().Set("Content-Type", mt)
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// writeOK answers 200 with an encoded export response.
func writeOK(in *receive.Intake, w http.ResponseWriter, mt string, b []byte, start time.Time) {
	w.Header().Set("Content-Type", mt)
	in.ObserveRequest(receive.ProtocolOTLPHTTP, strconv.Itoa(http.StatusOK), start)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
