package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// bombInflated is what the gzip, zstd and gRPC bombs inflate to.
const bombInflated = 1 << 30

// bombMemoryBound is the most resident memory (and Go heap) a process may
// reach while it refuses the bombs, one after the other, with the default
// limits (agent.receive.max-decompressed-bytes 64 MiB).
const bombMemoryBound = 256 << 20

// gzipBomb is 1 GiB of zeros as a multi-member gzip stream (~1 MiB):
// one member of 1 MiB of zeros, repeated.
func gzipBomb(t *testing.T) []byte {
	t.Helper()
	var member bytes.Buffer
	zw, err := gzip.NewWriterLevel(&member, gzip.BestCompression)
	require.NoError(t, err)
	_, err = zw.Write(make([]byte, 1<<20))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return bytes.Repeat(member.Bytes(), bombInflated>>20)
}

// zstdBomb is 1 GiB of zeros as zstd frames of 1 MiB each.
func zstdBomb(t *testing.T) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	require.NoError(t, err)
	defer enc.Close()
	return bytes.Repeat(enc.EncodeAll(make([]byte, 1<<20), nil), bombInflated>>20)
}

// snappyBomb is 128 MiB of zeros in the snappy block format (~6 MiB):
// snappy compresses at most ~21:1, so a GiB would not fit the 10 MiB wire
// limit; this one does and declares twice the decompressed limit.
func snappyBomb() []byte { return snappy.Encode(nil, make([]byte, 128<<20)) }

// snappyForged is a snappy block whose header declares 4 GiB − 1 bytes,
// followed by one literal byte.
var snappyForged = []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 'x'}

// gzipForged is a small gzip stream whose trailer claims 4 GiB − 1 bytes
// (ISIZE): the decoder must not trust it.
func gzipForged(t *testing.T, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(plain)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	b := buf.Bytes()
	binary.LittleEndian.PutUint32(b[len(b)-4:], 0xffffffff)
	return b
}

// zstdForged is one zstd frame whose header declares 4 GiB of content in
// a single segment (so a window of 4 GiB), holding one raw byte.
var zstdForged = func() []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0} // magic; single segment, 8-byte content size
	b = binary.LittleEndian.AppendUint64(b, 4<<30)
	return append(b, 0x09, 0x00, 0x00, 'x') // last raw block of 1 byte
}()

// grpcFrame is one gRPC length-prefixed message.
func grpcFrame(compressed bool, payload []byte) []byte {
	f := make([]byte, 5, 5+len(payload))
	if compressed {
		f[0] = 1
	}
	binary.BigEndian.PutUint32(f[1:], uint32(len(payload)))
	return append(f, payload...)
}

// h2cClient speaks HTTP/2 without TLS (prior knowledge), as gRPC does on
// a plain listener, so tests can send frames no gRPC client would.
var h2cClient = func() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Protocols: p, DisableKeepAlives: true}}
}()

// grpcCall posts body (gRPC frames) to method and returns the grpc-status
// code and message.
func grpcCall(t *testing.T, addr, method, encoding string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+method, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	if encoding != "" {
		req.Header.Set("Grpc-Encoding", encoding)
	}
	resp, err := h2cClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	st, msg := resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	if st == "" { // not a trailers-only answer
		st, msg = resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
	}
	code, err := strconv.Atoi(st)
	require.NoError(t, err, "grpc-status %q (HTTP %s)", st, resp.Status)
	return code, msg
}

// gRPC status codes the tests expect.
const (
	grpcOK                = 0
	grpcInvalidArgument   = 3
	grpcResourceExhausted = 8
)

const otlpMetricsMethod = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"

// peakSampler records a process's peak RSS until stopped.
type peakSampler struct {
	mu   sync.Mutex
	peak int64
	stop chan struct{}
	done chan struct{}
}

func samplePeakRSS(t *testing.T, pid int) *peakSampler {
	s := &peakSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, err := readRSS(pid); err == nil {
				s.mu.Lock()
				s.peak = max(s.peak, rss)
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { s.Stop() })
	return s
}

// Stop ends sampling and returns the peak.
func (s *peakSampler) Stop() int64 {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// readRSS is rssBytes without a testing.T, for the sampling goroutine.
func readRSS(pid int) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// remoteWriteV1 is a snappy remote write 1.0 request of one sample.
func remoteWriteV1(t *testing.T, name string, ts time.Time) []byte {
	t.Helper()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "job", Value: "bombs"}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: ts.UnixMilli()}},
	}}}
	b, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, b)
}

// TestDecompressionBombs sends every compressed endpoint a decompression
// bomb and a forged length: each is refused (413, or 400 for a stream
// that lies about its size; RESOURCE_EXHAUSTED over gRPC) while the
// process's resident memory and Go heap stay bounded, and it keeps
// serving.
func TestDecompressionBombs(t *testing.T) {
	t.Parallel()
	p := startPharos(t, "all", []string{"-data.dir", t.TempDir(), "-nats.partitions", "1"})
	grpcAddr, otlpHTTP := p.otlpAddrs()
	gz, zs := gzipBomb(t), zstdBomb(t)
	require.Less(t, len(gz), 10<<20, "the gzip bomb fits the wire limit")
	require.Less(t, len(zs), 10<<20, "the zstd bomb fits the wire limit")
	snBomb := snappyBomb()
	require.Less(t, len(snBomb), 10<<20, "the snappy bomb fits the wire limit")
	lokiJSON := []byte(`{"streams":[{"stream":{"app":"bombs"},"values":[["1","x"]]}]}`)

	const (
		rwV1 = "application/x-protobuf"
		rwV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
		pb   = "application/x-protobuf"
		js   = "application/json"
	)
	type httpCase struct {
		name, url, contentType, encoding string
		body                             []byte
		want                             []int
	}
	base := "http://" + p.addr
	var cases []httpCase
	for _, v := range []struct{ name, ct string }{{"1.0", rwV1}, {"2.0", rwV2}} {
		cases = append(cases,
			httpCase{"remote write " + v.name + " snappy bomb", base + "/api/v1/write", v.ct, "snappy", snBomb, []int{413}},
			httpCase{"remote write " + v.name + " forged snappy length", base + "/api/v1/write", v.ct, "snappy", snappyForged, []int{413}},
		)
	}
	for _, sig := range []string{"metrics", "logs", "traces"} {
		u := "http://" + otlpHTTP + "/v1/" + sig
		for _, ct := range []string{pb, js} {
			cases = append(cases,
				httpCase{"OTLP " + sig + " " + ct + " gzip bomb", u, ct, "gzip", gz, []int{413}},
				httpCase{"OTLP " + sig + " " + ct + " zstd bomb", u, ct, "zstd", zs, []int{413}},
			)
		}
		cases = append(cases,
			httpCase{"OTLP " + sig + " forged gzip length", u, js, "gzip", gzipForged(t, []byte("{}")), []int{400}},
			httpCase{"OTLP " + sig + " forged zstd length", u, pb, "zstd", zstdForged, []int{413}},
		)
	}
	cases = append(cases,
		httpCase{"OTLP metrics on the main port gzip bomb", base + "/v1/metrics", pb, "gzip", gz, []int{413}},
		httpCase{"Loki protobuf snappy bomb", base + "/loki/api/v1/push", pb, "", snBomb, []int{413}},
		httpCase{"Loki protobuf forged snappy length", base + "/loki/api/v1/push", pb, "", snappyForged, []int{413}},
		httpCase{"Loki JSON gzip bomb", base + "/loki/api/v1/push", js, "gzip", gz, []int{413}},
		httpCase{"Loki JSON zstd bomb", base + "/loki/api/v1/push", js, "zstd", zs, []int{413}},
		httpCase{"Loki JSON forged gzip length", base + "/loki/api/v1/push", js, "gzip", gzipForged(t, lokiJSON), []int{400}},
	)

	peak := samplePeakRSS(t, p.cmd.Process.Pid)
	maxHeap := 0.0
	checkHeap := func(what string) {
		t.Helper()
		heap, err := metricValue(t, p.addr, "go_memstats_heap_inuse_bytes")
		require.NoError(t, err)
		maxHeap = max(maxHeap, heap)
		require.Less(t, heap, float64(bombMemoryBound), "Go heap in use after %s", what)
	}
	for _, c := range cases {
		code, body := post(t, c.url, c.contentType, c.body, "Content-Encoding", c.encoding)
		require.Contains(t, c.want, code, "%s: %s", c.name, body)
		checkHeap(c.name)
	}

	// OTLP over gRPC: a gzip bomb, and a message length prefix of 4 GiB − 1
	// (refused from the 5-byte prefix, before anything is read).
	code, msg := grpcCall(t, grpcAddr, otlpMetricsMethod, "gzip", grpcFrame(true, gz))
	require.Equal(t, grpcResourceExhausted, code, msg)
	checkHeap("gRPC gzip bomb")
	forged := append([]byte{0, 0xff, 0xff, 0xff, 0xff}, "xxxx"...)
	code, msg = grpcCall(t, grpcAddr, otlpMetricsMethod, "", forged)
	require.Contains(t, []int{grpcResourceExhausted, grpcInvalidArgument}, code, msg)
	checkHeap("gRPC forged length")
	// A well-formed empty export still works over the same path.
	code, msg = grpcCall(t, grpcAddr, otlpMetricsMethod, "", grpcFrame(false, nil))
	require.Equal(t, grpcOK, code, msg)

	rss := peak.Stop()
	t.Logf("peak RSS %d MiB, peak Go heap in use after a bomb %d MiB", rss>>20, int64(maxHeap)>>20)
	require.Less(t, rss, int64(bombMemoryBound), "peak resident memory while refusing bombs")

	// Still serving: a normal push is stored and queryable.
	now := time.Now()
	code, body := post(t, base+"/api/v1/write", rwV1, remoteWriteV1(t, "after_bombs", now), "Content-Encoding", "snappy")
	require.Equal(t, http.StatusNoContent, code, body)
	testutil.Poll(t, dataTimeout, 200*time.Millisecond, func() (bool, string) {
		got, err := querySamples(p.addr, "after_bombs[1h]", now.Add(time.Minute))
		return err == nil && len(got) == 1, fmt.Sprintf("after_bombs: %v %v", got, err)
	})
	p.Stop()
}

// slowPush opens a remote write request that announces a body of n bytes
// and sends one: the agent admits it and holds a buffer of n bytes for it
// until the body arrives or the connection closes.
func slowPush(t *testing.T, addr string, n int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = fmt.Fprintf(c, "POST /api/v1/write HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nContent-Length: %d\r\n\r\nx", addr, n)
	require.NoError(t, err)
	return c
}

// TestMemoryLimiter fills an agent's heap past its soft limit with
// admitted pushes that hold their body buffers: while over it, every
// push protocol is refused as retryable (429 with Retry-After,
// RESOURCE_EXHAUSTED) and counted; once those pushes go away the agent
// accepts again and what it accepts is stored.
func TestMemoryLimiter(t *testing.T) {
	t.Parallel()
	p := startPharos(t, "all", []string{
		"-data.dir", t.TempDir(), "-nats.partitions", "1",
		"-memory.limit-bytes", strconv.Itoa(160 << 20), // soft limit 128 MiB
		"-memory.check-interval", "20ms", "-memory.min-gc-interval", "100ms",
	})
	grpcAddr, otlpHTTP := p.otlpAddrs()
	base := "http://" + p.addr
	gauge := func(name string) float64 {
		t.Helper()
		v, err := metricValue(t, p.addr, name)
		require.NoError(t, err)
		return v
	}
	require.Zero(t, gauge("pharos_memory_limiter_state"), "under the limit at start")
	require.InDelta(t, float64(160<<20+128<<20), gauge("pharos_memory_limiter_limit_bytes"), 1, "hard plus soft limit")
	now := time.Now()
	code, body := post(t, base+"/api/v1/write", "application/x-protobuf", remoteWriteV1(t, "before_limit", now), "Content-Encoding", "snappy")
	require.Equal(t, http.StatusNoContent, code, body)

	// 16 admitted pushes of 10 MiB each (agent.receive.max-request-bytes),
	// their bodies never sent: 160 MiB held, 16 in-flight slots left free.
	var slow []net.Conn
	for range 16 {
		slow = append(slow, slowPush(t, p.addr, 10<<20))
	}
	testutil.Poll(t, 30*time.Second, 20*time.Millisecond, func() (bool, string) {
		p.requireRunning()
		return gauge("pharos_memory_limiter_state") == 1, fmt.Sprintf("limiter not engaged; heap %g bytes", gauge("pharos_memory_limiter_heap_bytes"))
	})

	code, body = post(t, base+"/api/v1/write", "application/x-protobuf", remoteWriteV1(t, "refused", now), "Content-Encoding", "snappy")
	require.Equal(t, http.StatusTooManyRequests, code, body)
	require.Contains(t, body, "memory limit")
	code, body = post(t, "http://"+otlpHTTP+"/v1/logs", "application/json", []byte("{}"))
	require.Equal(t, http.StatusTooManyRequests, code, body)
	code, body = post(t, base+"/loki/api/v1/push", "application/json", []byte(`{"streams":[]}`))
	require.Equal(t, http.StatusTooManyRequests, code, body)
	code, msg := grpcCall(t, grpcAddr, "/opentelemetry.proto.collector.trace.v1.TraceService/Export", "", grpcFrame(false, nil))
	require.Equal(t, grpcResourceExhausted, code, msg)
	require.Contains(t, msg, "memory limit")
	refused := gauge("pharos_memory_limiter_refused_total")
	require.GreaterOrEqual(t, refused, 4.0, "every refusal counted")

	// Load stops: the held pushes go away, the heap comes back under.
	for _, c := range slow {
		require.NoError(t, c.Close())
	}
	testutil.Poll(t, 60*time.Second, 20*time.Millisecond, func() (bool, string) {
		p.requireRunning()
		return gauge("pharos_memory_limiter_state") == 0, fmt.Sprintf("limiter still engaged; heap %g bytes", gauge("pharos_memory_limiter_heap_bytes"))
	})
	code, body = post(t, base+"/api/v1/write", "application/x-protobuf", remoteWriteV1(t, "after_limit", now), "Content-Encoding", "snappy")
	require.Equal(t, http.StatusNoContent, code, body)
	code, msg = grpcCall(t, grpcAddr, "/opentelemetry.proto.collector.trace.v1.TraceService/Export", "", grpcFrame(false, nil))
	require.Equal(t, grpcOK, code, msg)
	for _, name := range []string{"before_limit", "after_limit"} {
		testutil.Poll(t, dataTimeout, 200*time.Millisecond, func() (bool, string) {
			got, err := querySamples(p.addr, name+"[1h]", now.Add(time.Minute))
			return err == nil && len(got) == 1, fmt.Sprintf("%s: %v %v", name, got, err)
		})
	}
	require.Equal(t, refused, gauge("pharos_memory_limiter_refused_total"), "nothing refused once back under")
	_, ok := p.findLog(func(ev logEvent) bool { return ev.Msg == "memory limiter engaged: refusing new data" })
	require.True(t, ok, "the engagement is logged")
	_, ok = p.findLog(func(ev logEvent) bool { return ev.Msg == "memory limiter released: accepting data again" })
	require.True(t, ok, "the release is logged")
	p.Stop()
}
