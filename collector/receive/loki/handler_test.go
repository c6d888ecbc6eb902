package loki

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/receive/receivetest"
	"github.com/pharos-obs/pharos/storage/logs"
)

const jsonPush = `{"streams":[{"stream":{"app":"api","env":"prod"},"values":[["1700000000000000002","second"],["1700000000000000001","first",{"trace_id":"abc"}]]}]}`

var jsonWant = []logs.Stream{stream(labels.FromStrings("app", "api", "env", "prod"),
	entry(1700000000000000002, "second"), entry(1700000000000000001, "first", "trace_id", "abc"))}

func protoPush() []byte {
	return pbPush(pbStream(`{app="api", env="prod"}`, pbEntry(1700000000000000002, "second"), pbEntry(1700000000000000001, "first", "trace_id", "abc")))
}

func TestPushAccepted(t *testing.T) {
	for _, c := range []struct {
		name  string
		body  func(t *testing.T) []byte
		hdr   []string
		proto string
	}{
		{"json", func(*testing.T) []byte { return []byte(jsonPush) }, []string{"Content-Type", "application/json; charset=utf-8"}, "loki_json"},
		{"json gzip", func(t *testing.T) []byte { return receivetest.Gzip(t, []byte(jsonPush)) }, []string{"Content-Type", contentTypeJSON, "Content-Encoding", "gzip"}, "loki_json"},
		{"json zstd", func(t *testing.T) []byte { return receivetest.Zstd(t, []byte(jsonPush)) }, []string{"Content-Type", contentTypeJSON, "Content-Encoding", "zstd"}, "loki_json"},
		{"protobuf", func(*testing.T) []byte { return snappy.Encode(nil, protoPush()) }, []string{"Content-Type", contentTypeProtobuf}, "loki_protobuf"},
		{"protobuf snappy encoding", func(*testing.T) []byte { return snappy.Encode(nil, protoPush()) }, []string{"Content-Type", contentTypeProtobuf, "Content-Encoding", "snappy"}, "loki_protobuf"},
		{"no content type", func(*testing.T) []byte { return snappy.Encode(nil, protoPush()) }, nil, "loki_protobuf"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil)
			r := e.post(t, c.body(t), append(c.hdr, receive.TenantHeader, " team-a ")...)
			require.Equal(t, http.StatusNoContent, r.code, r.body)
			p := e.sink.Pushes()
			require.Len(t, p, 1)
			require.Equal(t, "team-a", p[0].Tenant)
			receivetest.RequireStreams(t, jsonWant, p[0].Streams)

			require.InDelta(t, 1, e.metric(t, "pharos_agent_receive_requests_total", "protocol", c.proto, "status", "204"), 0)
			require.InDelta(t, 2, e.metric(t, "pharos_agent_received_log_entries_total", "protocol", c.proto), 0)
			require.InDelta(t, len("second")+len("first")+len("trace_id")+len("abc"), e.metric(t, "pharos_agent_received_log_bytes_total", "protocol", c.proto), 0)
		})
	}
}

func TestPushDefaultTenantAndEmpty(t *testing.T) {
	e := newEnv(t, nil)
	r := e.postJSON(t, jsonPush)
	require.Equal(t, http.StatusNoContent, r.code, r.body)
	require.Empty(t, e.sink.Pushes()[0].Tenant)

	// Nothing to store: no call to the sink.
	r = e.postJSON(t, `{"streams":[]}`)
	require.Equal(t, http.StatusNoContent, r.code, r.body)
	require.Len(t, e.sink.Pushes(), 1)
}

func TestPushRejected(t *testing.T) {
	longLine := strings.Repeat("x", 256<<10+1)
	manyLabels := make([]string, 0, 32)
	for i := range 16 {
		manyLabels = append(manyLabels, fmt.Sprintf("l%02d", i), "v")
	}
	for _, c := range []struct {
		name   string
		body   []byte
		hdr    []string
		msg    []string
		reason string // counted in pharos_agent_rejected_log_entries_total
	}{
		{name: "malformed JSON", body: []byte(`{"streams":[`), hdr: []string{"Content-Type", contentTypeJSON},
			msg: []string{"decode Loki push (JSON): ", "unexpected end of input"}},
		{name: "malformed protobuf", body: snappy.Encode(nil, []byte{0x0a, 0x05, 0x01}), hdr: []string{"Content-Type", contentTypeProtobuf},
			msg: []string{"decode Loki push (protobuf logproto.PushRequest): ", "unexpected EOF"}},
		{name: "not snappy", body: []byte("plain bytes"), hdr: []string{"Content-Type", contentTypeProtobuf},
			msg: []string{"malformed request body: snappy"}},
		{name: "bad gzip", body: []byte("\x1f\x8b nope"), hdr: []string{"Content-Type", contentTypeJSON, "Content-Encoding", "gzip"},
			msg: []string{"malformed request body: gzip"}},
		{name: "bad timestamp", body: []byte(`{"streams":[{"stream":{"app":"a"},"values":[["yesterday","x"]]}]}`), hdr: []string{"Content-Type", contentTypeJSON},
			msg: []string{`stream 0: entry 0: malformed push request: timestamp "yesterday" is not an integer of Unix nanoseconds`}},
		{name: "bad label string", body: snappy.Encode(nil, pbPush(pbStream(`{app=~"a"}`, pbEntry(1, "x")))), hdr: []string{"Content-Type", contentTypeProtobuf},
			msg: []string{`stream 0: malformed push request: labels "{app=~\"a\"}"`}},
		{name: "invalid label name", body: []byte(`{"streams":[{"stream":{"app.name":"a"},"values":[["1","x"]]}]}`), hdr: []string{"Content-Type", contentTypeJSON},
			msg: []string{"push rejected, nothing stored: 1 of 1 log entries rejected: ", `stream {"app.name"="a"}: label name "app.name" is not a valid label name`}, reason: receive.ReasonLogsInvalidLabels},
		{name: "quoted label name", body: snappy.Encode(nil, pbPush(pbStream(`{"app.name"="a"}`, pbEntry(1, "x")))), hdr: []string{"Content-Type", contentTypeProtobuf},
			msg: []string{`label name "app.name" is not a valid label name`}, reason: receive.ReasonLogsInvalidLabels},
		{name: "duplicate label", body: snappy.Encode(nil, pbPush(pbStream(`{app="a", app="b"}`, pbEntry(1, "x")))), hdr: []string{"Content-Type", contentTypeProtobuf},
			msg: []string{`label name "app" appears more than once`}, reason: receive.ReasonLogsInvalidLabels},
		{name: "no labels", body: []byte(`{"streams":[{"stream":{},"values":[["1","x"]]}]}`), hdr: []string{"Content-Type", contentTypeJSON},
			msg: []string{"stream {}: the stream has no labels (missing_labels)"}, reason: receive.ReasonLogsMissingLabels},
		{name: "only empty labels", body: snappy.Encode(nil, pbPush(pbStream(`{app=""}`, pbEntry(1, "x")))), hdr: []string{"Content-Type", contentTypeProtobuf},
			msg: []string{"the stream has no labels"}, reason: receive.ReasonLogsMissingLabels},
		{name: "too many labels", body: snappy.Encode(nil, pbPush(pbStream(labels.FromStrings(manyLabels...).String(), pbEntry(1, "x")))), hdr: []string{"Content-Type", contentTypeProtobuf},
			msg: []string{"16 labels exceed the limit of 15 (agent.receive.logs.max_label_names_per_stream)"}, reason: receive.ReasonLogsMaxLabelNames},
		{name: "label value too long", body: []byte(`{"streams":[{"stream":{"app":"` + strings.Repeat("v", 2049) + `"},"values":[["1","x"]]}]}`), hdr: []string{"Content-Type", contentTypeJSON},
			msg: []string{`value of label "app" is 2049 bytes long, over the limit of 2048 (agent.receive.logs.max_label_value_length)`}, reason: receive.ReasonLogsLabelValueTooLong},
		{name: "invalid UTF-8 label value", body: []byte("{\"streams\":[{\"stream\":{\"app\":\"\xff\"},\"values\":[[\"1\",\"x\"]]}]}"), hdr: []string{"Content-Type", contentTypeJSON},
			msg: []string{`value of label "app" is not valid UTF-8`}, reason: receive.ReasonLogsInvalidLabels},
		{name: "line too long", body: snappy.Encode(nil, pbPush(pbStream(`{app="a"}`, pbEntry(1, "ok"), pbEntry(2, longLine)), pbStream(`{app="b"}`, pbEntry(1, "ok")))),
			hdr: []string{"Content-Type", contentTypeProtobuf},
			msg: []string{`1 of 3 log entries rejected: stream {app="a"}: a line of 262145 bytes is over the limit of 262144 (agent.receive.logs.max_line_size)`}, reason: receive.ReasonLogsLineTooLong},
		{name: "empty metadata name", body: []byte(`{"streams":[{"stream":{"app":"a"},"values":[["1","x",{"":"v"}]]}]}`), hdr: []string{"Content-Type", contentTypeJSON},
			msg: []string{"an entry has structured metadata with an empty name"}, reason: receive.ReasonLogsInvalidMetadata},
		{name: "malformed tenant", body: []byte(jsonPush), hdr: []string{"Content-Type", contentTypeJSON, receive.TenantHeader, ".."},
			msg: []string{`X-Scope-OrgID: invalid tenant ID ".."`}},
		{name: "tenant with a slash", body: []byte(jsonPush), hdr: []string{"Content-Type", contentTypeJSON, receive.TenantHeader, "a/b"},
			msg: []string{`X-Scope-OrgID: invalid tenant ID "a/b": byte 1 (0x2f) is not one of`}},
		{name: "tenant too long", body: []byte(jsonPush), hdr: []string{"Content-Type", contentTypeJSON, receive.TenantHeader, strings.Repeat("t", 151)},
			msg: []string{"151 bytes long, over the limit of 150"}},
		{name: "tenant not printable", body: []byte(jsonPush), hdr: []string{"Content-Type", contentTypeJSON, receive.TenantHeader, "a\u00a0b"},
			msg: []string{"byte 1 (0xc2) is not one of"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil)
			r := e.post(t, c.body, c.hdr...)
			require.Equal(t, http.StatusBadRequest, r.code, r.body)
			for _, m := range c.msg {
				require.Contains(t, r.body, m)
			}
			require.Empty(t, e.sink.Pushes(), "nothing of a rejected request is stored")
			if c.reason != "" {
				require.GreaterOrEqual(t, e.metric(t, "pharos_agent_rejected_log_entries_total", "reason", c.reason), 1.0)
			}
		})
	}
}

func TestPushUnsupported(t *testing.T) {
	e := newEnv(t, nil)
	for _, c := range []struct {
		hdr []string
		msg string
	}{
		{[]string{"Content-Type", "text/plain"}, `unsupported content type "text/plain"`},
		{[]string{"Content-Type", contentTypeJSON, "Content-Encoding", "snappy"}, "JSON pushes take gzip or zstd"},
		{[]string{"Content-Type", contentTypeJSON, "Content-Encoding", "br"}, `unsupported content encoding "br"`},
		{[]string{"Content-Type", contentTypeProtobuf, "Content-Encoding", "gzip"}, "protobuf pushes are snappy-compressed"},
	} {
		r := e.post(t, []byte(jsonPush), c.hdr...)
		require.Equal(t, http.StatusUnsupportedMediaType, r.code, r.body)
		require.Contains(t, r.body, c.msg)
	}
	resp, err := http.Get(e.srv.URL + Path)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	require.Equal(t, http.MethodPost, resp.Header.Get("Allow"))
	require.InDelta(t, 1, e.metric(t, "pharos_agent_receive_requests_total", "protocol", "loki", "status", "415"), 0)
	require.Empty(t, e.sink.Pushes())
}

func TestPushLineRepairs(t *testing.T) {
	e := newEnv(t, func(_ *receive.Config, lc *receive.LogsConfig) {
		lc.MaxLineSize = 10
		lc.TruncateLongLines = true
	})
	body := pbPush(pbStream(`{app="a"}`,
		pbEntry(1, "0123456789abc"),        // truncated
		pbEntry(2, "012345678é"),           // é straddles the limit: cut before it
		pbEntry(3, "bad \xff utf8"),        // repaired
		pbEntry(4, "ok", "k", "v\xfe\xff"), // metadata repaired
	))
	r := e.postProto(t, body)
	require.Equal(t, http.StatusNoContent, r.code, r.body)
	receivetest.RequireStreams(t, []logs.Stream{stream(labels.FromStrings("app", "a"),
		entry(1, "0123456789"), entry(2, "012345678"), entry(3, "bad \uFFFD ut"), entry(4, "ok", "k", "v\uFFFD"))},
		e.sink.Pushes()[0].Streams)
	require.InDelta(t, 3, e.metric(t, "pharos_agent_log_lines_truncated_total"), 0)
	require.InDelta(t, 2, e.metric(t, "pharos_agent_log_lines_invalid_utf8_total"), 0)
}

func TestPushTooLarge(t *testing.T) {
	t.Run("body", func(t *testing.T) {
		e := newEnv(t, func(c *receive.Config, _ *receive.LogsConfig) { c.MaxRequestBytes = 4096 })
		r := e.postJSON(t, `{"streams":[{"stream":{"app":"a"},"values":[["1","`+strings.Repeat("x", 5000)+`"]]}]}`)
		require.Equal(t, http.StatusRequestEntityTooLarge, r.code, r.body)
		require.Contains(t, r.body, "agent.receive.max_request_bytes")
	})
	t.Run("forged snappy length", func(t *testing.T) {
		e := newEnv(t, nil)
		// A snappy block header declaring 1 GiB, then a few bytes: refused
		// from the header, before anything is allocated for it.
		body := []byte{0x80, 0x80, 0x80, 0x80, 0x04, 0x00, 'x'}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := e.post(t, body, "Content-Type", contentTypeProtobuf)
		runtime.ReadMemStats(&after)
		require.Equal(t, http.StatusRequestEntityTooLarge, r.code, r.body)
		require.Contains(t, r.body, "declares 1073741824 bytes decompressed")
		require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(16<<20))
	})
	t.Run("gzip bomb", func(t *testing.T) {
		e := newEnv(t, func(c *receive.Config, _ *receive.LogsConfig) { c.MaxDecompressedBytes = 1 << 20 })
		bomb := receivetest.Gzip(t, bytes.Repeat([]byte(" "), 64<<20))
		require.Less(t, len(bomb), 1<<20)
		r := e.post(t, bomb, "Content-Type", contentTypeJSON, "Content-Encoding", "gzip")
		require.Equal(t, http.StatusRequestEntityTooLarge, r.code, r.body)
		require.Contains(t, r.body, "inflates to more than 1048576 bytes (agent.receive.max_decompressed_bytes)")
	})
	t.Run("decoded entries", func(t *testing.T) {
		e := newEnv(t, func(c *receive.Config, _ *receive.LogsConfig) { c.MaxDecompressedBytes = 64 << 10 })
		var entries [][]byte
		for range 10000 {
			entries = append(entries, pbEntryTS(pbTimestamp(0, 0), ""))
		}
		body := pbPush(pbStream(`{app="a"}`, entries...))
		require.Less(t, len(body), 64<<10)
		r := e.postProto(t, body)
		require.Equal(t, http.StatusRequestEntityTooLarge, r.code, r.body)
		require.Contains(t, r.body, "expands to more than 65536 bytes of decoded entries")
	})
	t.Run("none stored", func(t *testing.T) {
		e := newEnv(t, nil)
		require.Empty(t, e.sink.Pushes())
	})
}

func TestPushSinkErrors(t *testing.T) {
	t.Run("transient", func(t *testing.T) {
		e := newEnv(t, nil)
		e.sink.Err = errors.New("bus unavailable")
		r := e.postJSON(t, jsonPush)
		require.Equal(t, http.StatusServiceUnavailable, r.code)
		require.Equal(t, "2", r.header.Get("Retry-After"))
		require.Contains(t, r.body, "not stored, retry later: bus unavailable")
		require.InDelta(t, 1, e.metric(t, "pharos_agent_receive_requests_total", "protocol", "loki_json", "status", "503"), 0)
		require.Zero(t, e.metric(t, "pharos_agent_received_log_entries_total", "protocol", "loki_json"))
	})
	t.Run("permanent", func(t *testing.T) {
		e := newEnv(t, nil)
		e.sink.Err = fmt.Errorf("batch of 9 MiB is over the bus's max payload: %w", receive.ErrLogsRejected)
		r := e.postProto(t, protoPush())
		require.Equal(t, http.StatusBadRequest, r.code)
		require.Empty(t, r.header.Get("Retry-After"))
		require.Contains(t, r.body, "batch of 9 MiB is over the bus's max payload")
		require.InDelta(t, 2, e.metric(t, "pharos_agent_rejected_log_entries_total", "reason", receive.ReasonLogsSinkRejected), 0)
	})
	t.Run("sender gone", func(t *testing.T) {
		e := newEnv(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		e.sink.Before = func(c context.Context) error {
			cancel()
			<-c.Done()
			return c.Err()
		}
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, Path, strings.NewReader(jsonPush))
		req.Header.Set("Content-Type", contentTypeJSON)
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, req)
		require.Equal(t, statusClientClosed, w.Code)
		require.InDelta(t, 1, e.metric(t, "pharos_agent_receive_requests_total", "protocol", "loki_json", "status", "499"), 0)
	})
}

func TestPushOverload(t *testing.T) {
	e := newEnv(t, func(c *receive.Config, _ *receive.LogsConfig) { c.MaxInflightRequests = 1 })
	gate := receivetest.NewGate(t)
	e.sink.Before = func(context.Context) error {
		gate.Hold()
		return nil
	}
	first := make(chan response, 1)
	go func() { first <- e.postJSON(t, jsonPush) }()
	gate.AwaitHeld(t)
	r := e.postProto(t, protoPush())
	require.Equal(t, http.StatusTooManyRequests, r.code)
	require.Equal(t, "2", r.header.Get("Retry-After"))
	require.Contains(t, r.body, "agent.receive.max_inflight_requests")
	require.InDelta(t, 1, e.metric(t, "pharos_agent_receive_requests_total", "protocol", "loki_protobuf", "status", "429"), 0)

	gate.Release()
	require.Equal(t, http.StatusNoContent, (<-first).code)
	require.Equal(t, http.StatusNoContent, e.postProto(t, protoPush()).code, "a slot is free again")
	require.Len(t, e.sink.Pushes(), 2)
}

// The sink's streams alias the handler's buffers, which the next request
// reuses: what a sink copied stays intact, and concurrent requests do not
// see each other's data.
func TestPushConcurrent(t *testing.T) {
	e := newEnv(t, nil)
	const n = 8
	var wg sync.WaitGroup
	codes := make(chan int, 2*n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 5 {
				app := fmt.Sprintf("app-%d-%d", i, j)
				body := fmt.Sprintf(`{"streams":[{"stream":{"app":%q},"values":[["%d",%q]]}]}`, app, i*10+j, "line of "+app)
				codes <- e.postJSON(t, body, receive.TenantHeader, app).code
				codes <- e.postProto(t, pbPush(pbStream(fmt.Sprintf(`{app=%q}`, app), pbEntry(int64(i*10+j), "line of "+app))), receive.TenantHeader, app).code
			}
		}()
	}
	go func() {
		wg.Wait()
		close(codes)
	}()
	for c := range codes {
		require.Equal(t, http.StatusNoContent, c)
	}
	pushes := e.sink.Pushes()
	require.Len(t, pushes, 2*n*5)
	for _, p := range pushes {
		require.Len(t, p.Streams, 1)
		require.Equal(t, p.Tenant, p.Streams[0].Labels.Get("app"))
		require.Equal(t, "line of "+p.Tenant, p.Streams[0].Entries[0].Line)
	}
}
