package receivetest

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// Post sends body to url with the headers in hdr, name, value pairs; a pair
// with an empty value is left out (net/http would send the header empty). It
// returns the answer's status code, body and header.
func Post(t testing.TB, client *http.Client, url string, body []byte, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] != "" {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b, resp.Header
}

// Gzip compresses b as a client sending Content-Encoding: gzip does.
func Gzip(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// Zstd compresses b as a client sending Content-Encoding: zstd does.
func Zstd(t testing.TB, b []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}

// Gate holds the first request that reaches it until Release, so that a
// test can keep a receiver's in-flight slots busy; later requests pass.
// Call Hold from a Recorder's BeforeCommit or a LogsRecorder's Before.
type Gate struct {
	held, release chan struct{}
	holdOnce      sync.Once
	releaseOnce   sync.Once
}

// NewGate returns a closed gate. It opens by itself when the test ends, so
// that a failed test does not leave the held request hanging.
func NewGate(t testing.TB) *Gate {
	g := &Gate{held: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(g.Release)
	return g
}

// Hold blocks the first caller until Release; later callers return at once.
func (g *Gate) Hold() {
	g.holdOnce.Do(func() {
		close(g.held)
		<-g.release
	})
}

// AwaitHeld waits until a request is held, failing the test after 10 s.
func (g *Gate) AwaitHeld(t testing.TB) {
	t.Helper()
	select {
	case <-g.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request never reached the gate")
	}
}

// Release lets the held request go on.
func (g *Gate) Release() {
	g.releaseOnce.Do(func() { close(g.release) })
}

// DiscardWriter is an http.ResponseWriter that keeps only the status code
// and allocates nothing per request, for benchmarks of handlers. The zero
// value is ready; clear H between requests, as a server hands each one
// fresh headers.
type DiscardWriter struct {
	H    http.Header
	Code int
}

// Header implements http.ResponseWriter.
func (w *DiscardWriter) Header() http.Header {
	if w.H == nil {
		w.H = http.Header{}
	}
	return w.H
}

// Write implements http.ResponseWriter.
func (w *DiscardWriter) Write(b []byte) (int, error) { return len(b), nil }

// WriteHeader implements http.ResponseWriter.
func (w *DiscardWriter) WriteHeader(code int) { w.Code = code }
