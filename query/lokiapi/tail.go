package lokiapi

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/coder/websocket"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/internal/tenant"
	"github.com/pharos-obs/pharos/query/limits"
	"github.com/pharos-obs/pharos/query/logql"
	"github.com/pharos-obs/pharos/storage/logs"
)

// tailWriteTimeout bounds sending one frame to a slow client.
const tailWriteTimeout = 10 * time.Second

// tail serves Loki's /tail websocket by polling the store: Pharos has no
// ingester to stream from. Each poll re-reads the last TailLateness so
// that entries which become searchable late still arrive; entries already
// sent are skipped.
func (a *API) tail(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	code := http.StatusSwitchingProtocols
	defer func() { a.metrics.requests.Observe("/loki/api/v1/tail", code, time.Since(began)) }()

	t, err := a.newTailer(r)
	if err != nil {
		a.limited.Observe(limits.APILoki, err)
		var msg string
		code, msg = classify(err)
		http.Error(w, msg, code)
		return
	}
	if !a.startTail() {
		code = http.StatusServiceUnavailable
		http.Error(w, "shutting down", code)
		return
	}
	defer a.tails.Done()
	// Loki accepts any origin; Grafana and logcli connect from elsewhere.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		code = http.StatusBadRequest
		return // Accept has answered
	}
	a.metrics.tails.Inc()
	defer a.metrics.tails.Dec()

	// CloseRead's context ends when the client closes. Canceling the context
	// a read runs under would drop the connection without a close frame, so
	// it lives until the handler has closed properly.
	readCtx, readCancel := context.WithCancel(context.Background())
	defer readCancel()
	ctx, cancel := context.WithTimeout(conn.CloseRead(readCtx), a.cfg.TailMaxDuration)
	defer cancel()
	defer context.AfterFunc(a.stop, cancel)()
	t.conn = conn
	if err := t.run(ctx); err != nil && ctx.Err() == nil {
		a.logger.Warn("Loki tail failed", "err", err)
		_, msg := classify(err)
		if len(msg) > 120 { // a close reason must fit in a control frame
			msg = msg[:120]
		}
		_ = conn.Close(websocket.StatusInternalError, msg)
		return
	}
	_ = conn.Close(websocket.StatusNormalClosure, "")
}

type tailKey struct {
	ts   int64
	hash uint64
}

type tailer struct {
	api    *API
	conn   *websocket.Conn
	tenant string
	expr   logql.Expr
	limit  int
	delay  time.Duration
	from   time.Time
	sent   map[tailKey]struct{}
}

func (a *API) newTailer(r *http.Request) (*tailer, error) {
	if err := r.ParseForm(); err != nil {
		return nil, badParam("error parsing form values: %v", err)
	}
	expr, err := logql.Parse(r.Form.Get("query"))
	if err != nil {
		return nil, err
	}
	if _, ok := expr.(*logql.LogSelectorExpr); !ok {
		return nil, badParam("tail requires a log query, not a metric query")
	}
	delay := 0
	if v := r.Form.Get("delay_for"); v != "" {
		if delay, err = strconv.Atoi(v); err != nil || delay < 0 {
			return nil, badParam("invalid delay_for %q", v)
		}
		if delay > maxDelayFor {
			return nil, badParam("delay_for can't be greater than %d", maxDelayFor)
		}
	}
	limit, err := parseLimit(r)
	if err != nil {
		return nil, err
	}
	if maxEntries := a.engine.Opts().MaxEntries; limit > maxEntries {
		return nil, logql.MaxEntriesError(limit, maxEntries)
	}
	from, err := parseTimestamp(r.Form.Get("start"), a.now().Add(-defaultSince))
	if err != nil {
		return nil, badParam("could not parse 'start' parameter: %v", err)
	}
	id, err := tenant.Resolve(r)
	if err != nil {
		return nil, badParam("%v", err)
	}
	return &tailer{
		api: a, tenant: tenant.Key(id), expr: expr, limit: limit,
		delay: time.Duration(delay) * time.Second, from: from, sent: map[tailKey]struct{}{},
	}, nil
}

func (t *tailer) run(ctx context.Context) error {
	// First the newest `limit` entries since start, then what is new.
	if err := t.poll(ctx, logs.Backward); err != nil {
		return err
	}
	tick := time.NewTicker(t.api.cfg.TailPollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := t.poll(ctx, logs.Forward); err != nil {
			return err
		}
	}
}

type tailEntry struct {
	labels labels.Labels
	entry  logql.Entry
	key    tailKey
}

func (t *tailer) poll(ctx context.Context, dir logs.Direction) error {
	to := t.api.now().Add(-t.delay)
	if !to.After(t.from) {
		return nil
	}
	res, err := t.api.engine.Exec(ctx, t.api.q, t.tenant, t.expr, logql.Params{
		Start: t.from, End: to, Limit: t.limit, Direction: dir,
	})
	if err != nil {
		return err
	}
	var fresh []tailEntry
	n := 0
	minTs, maxTs := int64(0), int64(0)
	d := xxhash.New()
	for _, s := range res.Data.(logql.Streams) {
		ls := s.Labels.String()
		for _, e := range s.Entries {
			if n == 0 || e.Timestamp < minTs {
				minTs = e.Timestamp
			}
			if n == 0 || e.Timestamp > maxTs {
				maxTs = e.Timestamp
			}
			n++
			d.Reset()
			_, _ = d.WriteString(ls)
			_, _ = d.Write([]byte{0xff})
			_, _ = d.WriteString(e.Line)
			k := tailKey{ts: e.Timestamp, hash: d.Sum64()}
			if _, dup := t.sent[k]; dup {
				continue
			}
			fresh = append(fresh, tailEntry{labels: s.Labels, entry: e, key: k})
		}
	}
	if len(fresh) > 0 {
		slices.SortStableFunc(fresh, func(a, b tailEntry) int {
			switch {
			case a.entry.Timestamp < b.entry.Timestamp:
				return -1
			case a.entry.Timestamp > b.entry.Timestamp:
				return 1
			}
			return 0
		})
		if err := t.send(ctx, fresh); err != nil {
			return err
		}
		for _, e := range fresh {
			t.sent[e.key] = struct{}{}
		}
	}

	next := to.Add(-t.api.cfg.TailLateness)
	if n >= t.limit && dir == logs.Forward {
		// More may wait in the window: go on from the newest entry read
		// (those at its timestamp already sent are skipped), or past it if
		// the whole batch shares one timestamp.
		next = time.Unix(0, maxTs)
		if minTs == maxTs {
			next = time.Unix(0, maxTs+1)
		}
	}
	if next.After(t.from) {
		t.from = next
	}
	from := t.from.UnixNano()
	for k := range t.sent {
		if k.ts < from {
			delete(t.sent, k)
		}
	}
	return nil
}

// send writes Loki's tail frame: {"streams":[...],"dropped_entries":null}.
func (t *tailer) send(ctx context.Context, entries []tailEntry) error {
	var streams logql.Streams
	index := map[string]int{}
	for _, e := range entries {
		k := e.labels.String()
		i, ok := index[k]
		if !ok {
			i = len(streams)
			index[k] = i
			streams = append(streams, logql.Stream{Labels: e.labels})
		}
		streams[i].Entries = append(streams[i].Entries, e.entry)
	}
	b := append([]byte(nil), `{"streams":`...)
	b = appendStreams(b, streams, false)
	b = append(b, `,"dropped_entries":null}`...)
	wctx, cancel := context.WithTimeout(ctx, tailWriteTimeout)
	defer cancel()
	return t.conn.Write(wctx, websocket.MessageText, b)
}
