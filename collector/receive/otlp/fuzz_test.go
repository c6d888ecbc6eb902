package otlp

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/receive/receivetest"
)

// seeds are OTLP bodies: the test metrics in both encodings, partial and
// empty ones.
func seeds(t testing.TB) (proto, json [][]byte) {
	now := time.Now()
	md := testMetrics(now)
	p := oneResource()
	gauge(p, "old", now.Add(-3*time.Hour), map[string]string{"a": "b"})
	return seedsOf(t, pmetricotlp.NewExportRequestFromMetrics(md), pmetricotlp.NewExportRequestFromMetrics(p), pmetricotlp.NewExportRequest())
}

// FuzzHTTPMetrics sends any body, as protobuf or JSON, through the
// OTLP/HTTP handler (decoding, translation, validation): it must answer
// 200, 400 or 413, never panic.
func FuzzHTTPMetrics(f *testing.F) {
	pb, js := seeds(f)
	for _, b := range pb {
		f.Add(b, false)
	}
	for _, b := range js {
		f.Add(b, true)
	}
	cfg, rc, lim := defaults()
	rc.MaxRequestBytes = 1 << 20
	in, err := receive.New(rc, lim, &receivetest.Recorder{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(f, err)
	m, err := NewMetrics(cfg, in, slog.New(slog.DiscardHandler))
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, data []byte, json bool) {
		ct := contentTypeProtobuf
		if json {
			ct = contentTypeJSON
		}
		req := httptest.NewRequest(http.MethodPost, MetricsPath, bytes.NewReader(data))
		req.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		m.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}
