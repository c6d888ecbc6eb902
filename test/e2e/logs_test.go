package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/klauspost/compress/snappy"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// lokiStream is one stream of a Loki streams result.
type lokiStream struct {
	Stream map[string]string `json:"stream"`
	Values [][]any           `json:"values"`
}

// lokiResult is the data of a Loki query response.
type lokiResult struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
	Stats      map[string]any  `json:"stats"`
}

func lokiQuery(addr, path string, params url.Values) (lokiResult, error) {
	var res lokiResult
	err := getAPI(addr, path, params, &res)
	return res, err
}

// lokiLines runs a log query over the last hour and returns its streams.
func lokiStreams(addr, query string, extra url.Values) ([]lokiStream, error) {
	params := url.Values{
		"query": {query},
		"start": {strconv.FormatInt(time.Now().Add(-time.Hour).UnixNano(), 10)},
		"end":   {strconv.FormatInt(time.Now().Add(time.Minute).UnixNano(), 10)},
		"limit": {"5000"},
	}
	for k, v := range extra {
		params[k] = v
	}
	res, err := lokiQuery(addr, "/loki/api/v1/query_range", params)
	if err != nil {
		return nil, err
	}
	if res.ResultType != "streams" {
		return nil, fmt.Errorf("resultType %q, want streams", res.ResultType)
	}
	var streams []lokiStream
	if err := json.Unmarshal(res.Result, &streams); err != nil {
		return nil, err
	}
	return streams, nil
}

// streamLines returns the lines of all streams, newest first (entries of
// one stream are ordered; streams are not ordered among themselves).
func streamLines(streams []lokiStream) []string {
	type entry struct {
		ts   int64
		line string
	}
	var es []entry
	for _, s := range streams {
		for _, v := range s.Values {
			ts, _ := strconv.ParseInt(v[0].(string), 10, 64)
			es = append(es, entry{ts, v[1].(string)})
		}
	}
	slices.SortStableFunc(es, func(a, b entry) int { return cmp.Compare(b.ts, a.ts) })
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.line
	}
	return out
}

// waitLines polls a log query until it returns want lines.
func waitLines(t *testing.T, addr, query string, want int) []lokiStream {
	t.Helper()
	var streams []lokiStream
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		var err error
		streams, err = lokiStreams(addr, query, nil)
		if err != nil {
			return false, err.Error()
		}
		n := len(streamLines(streams))
		return n == want, fmt.Sprintf("%s: %d lines, want %d", query, n, want)
	})
	return streams
}

func post(t *testing.T, u, contentType string, body []byte, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// lokiProtoPush builds a snappy-compressed logproto.PushRequest by hand,
// as Promtail and Alloy send it.
func lokiProtoPush(labels string, ts time.Time, lines ...string) []byte {
	var stream []byte
	stream = protowire.AppendTag(stream, 1, protowire.BytesType)
	stream = protowire.AppendString(stream, labels)
	for i, l := range lines {
		var tsb []byte
		t := ts.Add(time.Duration(i) * time.Millisecond)
		tsb = protowire.AppendTag(tsb, 1, protowire.VarintType)
		tsb = protowire.AppendVarint(tsb, uint64(t.Unix()))
		tsb = protowire.AppendTag(tsb, 2, protowire.VarintType)
		tsb = protowire.AppendVarint(tsb, uint64(t.Nanosecond()))
		var e []byte
		e = protowire.AppendTag(e, 1, protowire.BytesType)
		e = protowire.AppendBytes(e, tsb)
		e = protowire.AppendTag(e, 2, protowire.BytesType)
		e = protowire.AppendString(e, l)
		stream = protowire.AppendTag(stream, 2, protowire.BytesType)
		stream = protowire.AppendBytes(stream, e)
	}
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	req = protowire.AppendBytes(req, stream)
	return snappy.Encode(nil, req)
}

// TestLogsEndToEnd pushes logs through both Loki push formats and OTLP,
// tails a file, and reads everything back through the Loki API with the
// requests Grafana's Loki data source sends.
func TestLogsEndToEnd(t *testing.T) {
	t.Parallel()
	logDir := t.TempDir()
	p := startPharos(t, "all", []string{
		"-data.dir", t.TempDir(),
		"-nats.partitions", "4",
		"-agent.tail.include", filepath.Join(logDir, "*.log"),
		"-agent.tail.poll-interval", "100ms",
		"-agent.tail.batch-wait", "100ms",
	})
	base := "http://" + p.addr
	now := time.Now()

	// Loki JSON push, one entry with structured metadata.
	ns := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).UnixNano(), 10) }
	jsonBody := fmt.Sprintf(`{"streams":[{"stream":{"app":"json-push","env":"e2e"},"values":[
		["%s","level=info msg=\"started\""],
		["%s","level=error msg=\"disk full\" code=507",{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}],
		["%s","level=info msg=\"request\" duration=12ms"]]}]}`, ns(-3*time.Second), ns(-2*time.Second), ns(-time.Second))
	code, body := post(t, base+"/loki/api/v1/push", "application/json", []byte(jsonBody))
	require.Equal(t, http.StatusNoContent, code, body)

	// Loki protobuf push.
	code, body = post(t, base+"/loki/api/v1/push", "application/x-protobuf",
		lokiProtoPush(`{app="proto-push", env="e2e"}`, now.Add(-2*time.Second), "proto one", "proto two error"))
	require.Equal(t, http.StatusNoContent, code, body)

	// OTLP logs over HTTP.
	req := plogotlp.NewExportRequest()
	rl := req.Logs().ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "checkout")
	rl.Resource().Attributes().PutStr("k8s.namespace.name", "shop")
	for i, msg := range []string{"payment accepted", "payment declined"} {
		lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(i-2) * time.Second)))
		lr.Body().SetStr(msg)
		lr.SetSeverityText("INFO")
		lr.Attributes().PutInt("amount", int64(10*(i+1)))
	}
	otlpBody, err := req.MarshalProto()
	require.NoError(t, err)
	code, body = post(t, base+"/v1/logs", "application/x-protobuf", otlpBody)
	require.Equal(t, http.StatusOK, code, body)

	// A tailed file.
	require.NoError(t, os.WriteFile(filepath.Join(logDir, "app.log"), []byte("file line 1\nfile line 2 error\nfile line 3\n"), 0o644))

	// Bad pushes get 400 with a message, and nothing else is lost.
	code, body = post(t, base+"/loki/api/v1/push", "application/json", []byte(`{"streams":[{"stream":{},"values":[["1","x"]]}]}`))
	require.Equal(t, http.StatusBadRequest, code)
	require.NotEmpty(t, strings.TrimSpace(body))
	code, _ = post(t, base+"/loki/api/v1/push", "application/x-protobuf", []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2})
	require.Contains(t, []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge}, code)

	t.Run("json push", func(t *testing.T) {
		streams := waitLines(t, p.addr, `{app="json-push"}`, 3)
		// Backward by default: newest first.
		require.Equal(t, []string{`level=info msg="request" duration=12ms`, `level=error msg="disk full" code=507`, `level=info msg="started"`},
			streamLines(streams))
		for _, s := range streams {
			require.Equal(t, "json-push", s.Stream["app"])
			require.Equal(t, "e2e", s.Stream["env"])
			for _, v := range s.Values {
				_, err := strconv.ParseInt(v[0].(string), 10, 64)
				require.NoError(t, err, "timestamp %v is not a nanosecond string", v[0])
			}
		}
	})
	t.Run("protobuf push", func(t *testing.T) {
		waitLines(t, p.addr, `{app="proto-push"}`, 2)
	})
	t.Run("otlp", func(t *testing.T) {
		streams := waitLines(t, p.addr, `{service_name="checkout"}`, 2)
		require.Equal(t, "shop", streams[0].Stream["k8s_namespace_name"])
	})
	t.Run("tailed file", func(t *testing.T) {
		waitLines(t, p.addr, fmt.Sprintf(`{filename=%q}`, filepath.Join(logDir, "app.log")), 3)
	})
	t.Run("grafana query_range", func(t *testing.T) {
		// As Grafana sends it: ns start/end, step in seconds, direction, limit.
		params := url.Values{"direction": {"forward"}, "step": {"0.5"}}
		streams, err := lokiStreams(p.addr, `{env="e2e"} |= "error"`, params)
		require.NoError(t, err)
		require.ElementsMatch(t, []string{`level=error msg="disk full" code=507`, "proto two error"}, streamLines(streams))

		streams, err = lokiStreams(p.addr, `{app="json-push"} | logfmt | level="error" | line_format "{{.msg}} ({{.code}})"`, nil)
		require.NoError(t, err)
		require.Equal(t, []string{"disk full (507)"}, streamLines(streams))
		require.Equal(t, "error", streams[0].Stream["level"], "parsed labels join the stream")
	})
	t.Run("metric query", func(t *testing.T) {
		res, err := lokiQuery(p.addr, "/loki/api/v1/query", url.Values{
			"query": {`sum by (app) (count_over_time({env="e2e"}[10m]))`},
			"time":  {strconv.FormatInt(time.Now().UnixNano(), 10)},
		})
		require.NoError(t, err)
		require.Equal(t, "vector", res.ResultType)
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		require.NoError(t, json.Unmarshal(res.Result, &vec))
		got := map[string]string{}
		for _, s := range vec {
			got[s.Metric["app"]] = s.Value[1].(string)
		}
		require.Equal(t, map[string]string{"json-push": "3", "proto-push": "2"}, got)

		res, err = lokiQuery(p.addr, "/loki/api/v1/query_range", url.Values{
			"query": {`sum(rate({env="e2e"}[1m]))`},
			"start": {strconv.FormatInt(now.Add(-time.Minute).Unix(), 10)},
			"end":   {strconv.FormatInt(now.Add(time.Minute).Unix(), 10)},
			"step":  {"15"},
		})
		require.NoError(t, err)
		require.Equal(t, "matrix", res.ResultType)
	})
	t.Run("labels and series", func(t *testing.T) {
		start := strconv.FormatInt(now.Add(-time.Hour).UnixNano(), 10)
		end := strconv.FormatInt(time.Now().Add(time.Minute).UnixNano(), 10)
		var names []string
		require.NoError(t, getAPI(p.addr, "/loki/api/v1/labels", url.Values{"start": {start}, "end": {end}}, &names))
		for _, n := range []string{"app", "env", "service_name", "filename"} {
			require.Contains(t, names, n)
		}
		var values []string
		require.NoError(t, getAPI(p.addr, "/loki/api/v1/label/app/values", url.Values{"start": {start}, "end": {end}}, &values))
		require.Subset(t, values, []string{"json-push", "proto-push"})
		var series []map[string]string
		require.NoError(t, getAPI(p.addr, "/loki/api/v1/series", url.Values{"match[]": {`{env="e2e"}`}, "start": {start}, "end": {end}}, &series))
		apps := []string{}
		for _, s := range series {
			apps = append(apps, s["app"])
		}
		slices.Sort(apps)
		require.Equal(t, []string{"json-push", "proto-push"}, apps)
	})
	t.Run("bad queries", func(t *testing.T) {
		for q, want := range map[string]string{
			`{app="json-push"`:                  "",
			`{app="json-push"} | pattern "<_>"`: "pattern",
		} {
			u := base + "/loki/api/v1/query_range?" + url.Values{"query": {q}}.Encode()
			resp, err := httpClient.Get(u)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s: %s", q, b)
			require.Contains(t, string(b), want)
		}
	})
	t.Run("tail", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), dataTimeout)
		defer cancel()
		u := "ws://" + p.addr + "/loki/api/v1/tail?" + url.Values{
			"query": {`{app="tail-ws"}`},
			"start": {strconv.FormatInt(time.Now().Add(-time.Minute).UnixNano(), 10)},
		}.Encode()
		c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: httpClient})
		require.NoError(t, err)
		defer c.CloseNow()
		body := fmt.Sprintf(`{"streams":[{"stream":{"app":"tail-ws"},"values":[["%d","live line"]]}]}`, time.Now().UnixNano())
		code, resp := post(t, base+"/loki/api/v1/push", "application/json", []byte(body))
		require.Equal(t, http.StatusNoContent, code, resp)
		for {
			_, msg, err := c.Read(ctx)
			require.NoError(t, err)
			var frame struct {
				Streams []lokiStream `json:"streams"`
			}
			require.NoError(t, json.Unmarshal(msg, &frame))
			if lines := streamLines(frame.Streams); len(lines) > 0 {
				require.Equal(t, []string{"live line"}, lines)
				break
			}
		}
		c.Close(websocket.StatusNormalClosure, "")
	})
	p.Stop()
}
