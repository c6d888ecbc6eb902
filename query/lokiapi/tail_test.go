package lokiapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/storage/logs"
)

type tailFrame struct {
	Streams []struct {
		Stream map[string]string `json:"stream"`
		Values [][2]string       `json:"values"`
	} `json:"streams"`
	DroppedEntries json.RawMessage `json:"dropped_entries"`
}

// dialTail opens a tail as tenant t1.
func dialTail(t *testing.T, f *fixture, params url.Values) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/loki/api/v1/tail?" + params.Encode()
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient: f.srv.Client(),
		HTTPHeader: http.Header{"X-Scope-OrgID": {"t1"}},
	})
	require.NoError(t, err)
	if resp.Body != nil {
		resp.Body.Close()
	}
	return conn
}

// readLines reads frames until want lines arrived (in order) or the
// deadline passes.
func readLines(t *testing.T, conn *websocket.Conn, want []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	for len(got) < len(want) {
		typ, data, err := conn.Read(ctx)
		require.NoError(t, err, "got %q so far", got)
		require.Equal(t, websocket.MessageText, typ)
		var frame tailFrame
		require.NoError(t, json.Unmarshal(data, &frame), string(data))
		require.Equal(t, "null", string(frame.DroppedEntries))
		for _, s := range frame.Streams {
			require.Equal(t, "web", s.Stream["app"])
			for _, v := range s.Values {
				got = append(got, v[1])
			}
		}
	}
	require.Equal(t, want, got)
}

func TestTail(t *testing.T) {
	f := newFixture(t, Config{})
	f.api.now = time.Now
	now := time.Now()
	web := labels.FromStrings("app", "web", "tailed", "yes")
	require.NoError(t, f.q.Append("t1", []logs.Stream{{Labels: web, Entries: []logs.Entry{
		{Timestamp: now.Add(-2 * time.Minute).UnixNano(), Line: "old 1"},
		{Timestamp: now.Add(-time.Minute).UnixNano(), Line: "old 2"},
		{Timestamp: now.Add(-time.Minute).UnixNano(), Line: "old 3 filtered"},
	}}}))

	conn := dialTail(t, f, url.Values{"query": {`{app="web", tailed="yes"} != "filtered"`}, "limit": {"10"}})
	defer conn.CloseNow()
	// The history since start (an hour back by default) comes first, oldest first.
	readLines(t, conn, []string{"old 1", "old 2"})

	// New entries arrive as they are appended, each once.
	for i, batch := range [][]string{{"new 1"}, {"new 2", "new 3 filtered", "new 4"}} {
		var entries []logs.Entry
		for _, l := range batch {
			entries = append(entries, logs.Entry{Timestamp: time.Now().UnixNano(), Line: l})
		}
		require.NoError(t, f.q.Append("t1", []logs.Stream{{Labels: web, Entries: entries}}))
		if i == 0 {
			readLines(t, conn, []string{"new 1"})
		} else {
			readLines(t, conn, []string{"new 2", "new 4"})
		}
	}
	require.NoError(t, conn.Close(websocket.StatusNormalClosure, ""))
}

func TestTailStop(t *testing.T) {
	f := newFixture(t, Config{})
	f.api.now = time.Now
	conn := dialTail(t, f, url.Values{"query": {`{app="web"}`}, "delay_for": {"2"}})
	defer conn.CloseNow()
	// Stop waits for the tail, whose close handshake needs this side reading.
	stopped := make(chan struct{})
	go func() {
		f.api.Stop()
		close(stopped)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := conn.Read(ctx)
	var ce websocket.CloseError
	require.True(t, errors.As(err, &ce), "%v", err)
	require.Equal(t, websocket.StatusNormalClosure, ce.Code)
	<-stopped

	// A stopped API refuses new tails.
	code, _ := f.get(t, "/loki/api/v1/tail", url.Values{"query": {`{app="web"}`}})
	require.Equal(t, http.StatusServiceUnavailable, code)
}

func TestTailErrors(t *testing.T) {
	f := newFixture(t, Config{})
	for _, tc := range []struct {
		params url.Values
		msg    string
	}{
		{url.Values{"query": {`count_over_time({app="web"}[1m])`}}, "tail requires a log query"},
		{url.Values{"query": {`{app="web"`}}, "parse error"},
		{url.Values{"query": {`{app="web"}`}, "delay_for": {"6"}}, "delay_for can't be greater than 5"},
		{url.Values{"query": {`{app="web"}`}, "limit": {"-1"}}, "limit must be a positive value"},
		{url.Values{"query": {`{app="web"}`}, "start": {"x"}}, "could not parse 'start' parameter"},
	} {
		code, body := f.get(t, "/loki/api/v1/tail", tc.params)
		require.Equal(t, http.StatusBadRequest, code, body)
		require.Contains(t, body, tc.msg)
	}
}
