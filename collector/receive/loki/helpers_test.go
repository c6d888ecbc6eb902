package loki

import (
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/receive/receivetest"
	"github.com/pharos-obs/pharos/storage/logs"
)

// defaults returns the configurations as their flags default them.
func defaults() (receive.Config, receive.Limits, receive.LogsConfig) {
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	var c receive.Config
	var l receive.Limits
	c.RegisterFlags(fs) // registers c.Logs too
	l.RegisterFlags(fs)
	return c, l, c.Logs
}

type env struct {
	srv  *httptest.Server
	sink *receivetest.LogsRecorder
	reg  *prometheus.Registry
	li   *receive.LogsIntake
	h    *Handler
}

// newEnv serves a Handler over real HTTP into a recording sink; adjust,
// when given, changes the defaults first.
func newEnv(t *testing.T, adjust func(*receive.Config, *receive.LogsConfig)) *env {
	t.Helper()
	cfg, lim, lc := defaults()
	if adjust != nil {
		adjust(&cfg, &lc)
	}
	e := &env{sink: &receivetest.LogsRecorder{}, reg: prometheus.NewRegistry()}
	logger := slog.New(slog.DiscardHandler)
	in, err := receive.New(cfg, lim, receivetest.Discard{}, logger, e.reg)
	require.NoError(t, err)
	e.li, err = receive.NewLogsIntake(lc, in, e.sink, logger, e.reg)
	require.NoError(t, err)
	e.h = NewHandler(e.li, logger)
	mux := http.NewServeMux()
	e.h.Register(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

type response struct {
	code   int
	body   string
	header http.Header
}

// post sends a raw body; hdr is name, value pairs.
func (e *env) post(t *testing.T, body []byte, hdr ...string) response {
	t.Helper()
	code, b, h := receivetest.Post(t, e.srv.Client(), e.srv.URL+Path, body, hdr...)
	return response{code: code, body: string(b), header: h}
}

func (e *env) postJSON(t *testing.T, body string, hdr ...string) response {
	t.Helper()
	return e.post(t, []byte(body), append([]string{"Content-Type", contentTypeJSON}, hdr...)...)
}

// postProto snappy-encodes a PushRequest and sends it as Promtail does.
func (e *env) postProto(t *testing.T, req []byte, hdr ...string) response {
	t.Helper()
	return e.post(t, snappy.Encode(nil, req), append([]string{"Content-Type", contentTypeProtobuf}, hdr...)...)
}

func (e *env) metric(t *testing.T, name string, kv ...string) float64 {
	t.Helper()
	return receivetest.Metric(t, e.reg, name, kv...)
}

// Protobuf builders, by hand as the decoder reads them.

func pbPush(streams ...[]byte) []byte {
	var b []byte
	for _, s := range streams {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, s)
	}
	return b
}

func pbStream(lbls string, entries ...[]byte) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, lbls)
	for _, e := range entries {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, e)
	}
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	return protowire.AppendVarint(b, 0xdeadbeef)
}

func pbTimestamp(secs int64, nanos int32) []byte {
	b := []byte{} // not nil: an empty Timestamp is the epoch
	if secs != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(secs))
	}
	if nanos != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(nanos)))
	}
	return b
}

// pbEntry is an entry at ns with metadata name, value pairs.
func pbEntry(ns int64, line string, meta ...string) []byte {
	return pbEntryTS(pbTimestamp(ns/1e9, int32(ns%1e9)), line, meta...)
}

func pbEntryTS(ts []byte, line string, meta ...string) []byte {
	var b []byte
	if ts != nil {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, ts)
	}
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, line)
	for i := 0; i+1 < len(meta); i += 2 {
		var p []byte
		p = protowire.AppendTag(p, 1, protowire.BytesType)
		p = protowire.AppendString(p, meta[i])
		p = protowire.AppendTag(p, 2, protowire.BytesType)
		p = protowire.AppendString(p, meta[i+1])
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, p)
	}
	return b
}

// entry builds an expected entry.
func entry(ts int64, line string, meta ...string) logs.Entry {
	return logs.Entry{Timestamp: ts, Line: line, Metadata: labels.FromStrings(meta...)}
}

func stream(ls labels.Labels, entries ...logs.Entry) logs.Stream {
	return logs.Stream{Labels: ls, Entries: entries}
}
