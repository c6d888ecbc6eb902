package query

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/internal/bus/codec"
	"github.com/pharos-obs/pharos/query/limits"
	"github.com/pharos-obs/pharos/storage/logs"
)

// Internal log read API of the aggregators (see aggregator/logsread.go).
const (
	logsSelectPath      = "/internal/v1/logs/select"
	logsLabelNamesPath  = "/internal/v1/logs/labels"
	logsLabelValuesPath = "/internal/v1/logs/label_values"
	logsSeriesPath      = "/internal/v1/logs/series"
)

// maxLogsResponseBytes bounds one aggregator's decompressed answer.
const maxLogsResponseBytes = 256 << 20

// ErrLogsUnavailable reports that aggregators holding data could not be
// read (and partial responses are off, or none answered). The errors that
// wrap it also say so through an Unavailable method, which the Loki API
// answers with 503.
var ErrLogsUnavailable = errors.New("log data unavailable")

type unavailableError struct{ error }

func (unavailableError) Unavailable() bool { return true }

// RemoteLogs is a logs.Querier over the internal log read API of a set of
// aggregators: it asks all of them and merges the answers. A stream is
// written by its partition's owner, and during a hand-over or with replicas
// by more than one aggregator, so identical entries (same stream, time and
// line) from several collapse into one.
type RemoteLogs struct {
	endpoints EndpointsFunc
	partial   bool
	http      *http.Client
	logger    *slog.Logger
}

// NewRemoteLogs reads from the aggregators endpoints returns. With partial
// set, an aggregator that fails is left out (and logged); without, the
// query fails — unless the endpoint is Redundant. Response bodies are
// charged to the query's limits.Budget (-query.*.max-fetched-bytes-per-query).
func NewRemoteLogs(endpoints EndpointsFunc, client *http.Client, partial bool, logger *slog.Logger) *RemoteLogs {
	counted := *client
	counted.Transport = limits.Transport(client.Transport)
	return &RemoteLogs{endpoints: endpoints, partial: partial, http: &counted, logger: logger}
}

type logsSelectRequest struct {
	Tenant      string            `json:"tenant"`
	Selector    string            `json:"selector"`
	Start       int64             `json:"start"`
	End         int64             `json:"end"`
	LineFilters []logs.LineFilter `json:"line_filters,omitempty"`
	Limit       int               `json:"limit"`
	Direction   logs.Direction    `json:"direction"`
}

type logsLookupRequest struct {
	Tenant   string `json:"tenant"`
	Name     string `json:"name,omitempty"`
	Selector string `json:"selector,omitempty"`
	Start    int64  `json:"start"`
	End      int64  `json:"end"`
}

// fanOut calls fn for every endpoint at once and applies the partial
// response policy to the failures.
func (r *RemoteLogs) fanOut(ctx context.Context, fn func(ctx context.Context, ep Endpoint) error) error {
	eps := r.endpoints()
	if len(eps) == 0 {
		return unavailableError{fmt.Errorf("%w: no aggregators known", ErrLogsUnavailable)}
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failed   []error
		answered int
	)
	for _, ep := range eps {
		wg.Go(func() {
			err := fn(ctx, ep)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				answered++
				return
			}
			if ep.Redundant {
				return
			}
			what := "its data"
			if ep.Holds != "" {
				what = ep.Holds
			}
			failed = append(failed, fmt.Errorf("aggregator %s (%s) unavailable, %s may be missing: %w", ep.Name, ep.Addr, what, err))
		})
	}
	wg.Wait()
	// A query limit stops the query whatever the partial-response policy: what was
	// left out was left out on purpose.
	if err := limits.FromContext(ctx).Err(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(failed) == 0 {
		return nil
	}
	if r.partial && answered > 0 {
		for _, err := range failed {
			r.logger.Warn("partial log query result", "err", err)
		}
		return nil
	}
	return unavailableError{fmt.Errorf("%w: %w", ErrLogsUnavailable, errors.Join(failed...))}
}

func (r *RemoteLogs) post(ctx context.Context, ep Endpoint, path string, body any) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ep.Addr+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		return nil, aggregatorStatusError{path: path, code: resp.StatusCode, status: resp.Status, msg: string(bytes.TrimSpace(msg))}
	}
	return resp, nil
}

// aggregatorStatusError is an aggregator's answer other than 200 OK.
type aggregatorStatusError struct {
	path, status, msg string
	code              int
}

func (e aggregatorStatusError) Error() string { return e.path + ": " + e.status + ": " + e.msg }

// Select implements logs.Querier.
func (r *RemoteLogs) Select(ctx context.Context, p logs.SelectParams) ([]logs.Stream, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	req := logsSelectRequest{Tenant: p.Tenant, Selector: matchersString(p.Matchers), Start: p.Start, End: p.End,
		LineFilters: p.LineFilters, Limit: p.Limit, Direction: p.Direction}
	var (
		mu  sync.Mutex
		all [][]logs.Stream
	)
	err := r.fanOut(ctx, func(ctx context.Context, ep Endpoint) error {
		resp, err := r.post(ctx, ep, logsSelectPath, req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxLogsResponseBytes+1))
		if err != nil {
			return err
		}
		streams, err := codec.NewLogsDecoder(maxLogsResponseBytes).Decode(resp.Header.Get("Pharos-Encoding"), data)
		if err != nil {
			return fmt.Errorf("decode select response: %w", err)
		}
		mu.Lock()
		all = append(all, streams)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return MergeStreams(all, p.Direction, p.Limit), nil
}

// MergeStreams merges several answers to one selection: streams with the
// same labels become one, entries in direction order with exact duplicates
// (same time, line and metadata) dropped, and with a limit only the first
// limit entries over all streams kept.
func MergeStreams(answers [][]logs.Stream, dir logs.Direction, limit int) []logs.Stream {
	byLabels := map[string]*logs.Stream{}
	var out []*logs.Stream
	for _, streams := range answers {
		for i := range streams {
			key := streams[i].Labels.String()
			st, ok := byLabels[key]
			if !ok {
				cp := logs.Stream{Labels: streams[i].Labels}
				st = &cp
				byLabels[key] = st
				out = append(out, st)
			}
			st.Entries = append(st.Entries, streams[i].Entries...)
		}
	}
	before := func(a, b *logs.Entry) int {
		c := cmp.Compare(a.Timestamp, b.Timestamp)
		if dir == logs.Backward {
			c = -c
		}
		if c != 0 {
			return c
		}
		if c = cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return labels.Compare(a.Metadata, b.Metadata)
	}
	for _, st := range out {
		slices.SortStableFunc(st.Entries, func(a, b logs.Entry) int { return before(&a, &b) })
		st.Entries = slices.CompactFunc(st.Entries, func(a, b logs.Entry) bool { return before(&a, &b) == 0 })
	}
	if limit > 0 {
		// Keep the first limit entries over all streams: find the cut-off
		// entry by merging the (sorted) streams' heads.
		type cursor struct {
			st *logs.Stream
			i  int
		}
		heads := make([]cursor, 0, len(out))
		for _, st := range out {
			heads = append(heads, cursor{st: st})
		}
		kept := make(map[*logs.Stream]int, len(out))
		for n := 0; n < limit; n++ {
			best := -1
			for h := range heads {
				c := &heads[h]
				if c.i >= len(c.st.Entries) {
					continue
				}
				if best < 0 || before(&c.st.Entries[c.i], &heads[best].st.Entries[heads[best].i]) < 0 {
					best = h
				}
			}
			if best < 0 {
				break
			}
			heads[best].i++
			kept[heads[best].st] = heads[best].i
		}
		for _, st := range out {
			st.Entries = st.Entries[:kept[st]]
		}
	}
	res := make([]logs.Stream, 0, len(out))
	for _, st := range out {
		if len(st.Entries) > 0 {
			res = append(res, *st)
		}
	}
	slices.SortFunc(res, func(a, b logs.Stream) int { return labels.Compare(a.Labels, b.Labels) })
	return res
}

func (r *RemoteLogs) lookup(ctx context.Context, path, name string, p logs.LabelParams, each func(dec *json.Decoder) error) error {
	req := logsLookupRequest{Tenant: p.Tenant, Name: name, Start: p.Start, End: p.End}
	if len(p.Matchers) > 0 {
		req.Selector = matchersString(p.Matchers)
	}
	var mu sync.Mutex
	return r.fanOut(ctx, func(ctx context.Context, ep Endpoint) error {
		resp, err := r.post(ctx, ep, path, req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		mu.Lock()
		defer mu.Unlock()
		return each(json.NewDecoder(io.LimitReader(resp.Body, maxLogsResponseBytes)))
	})
}

func (r *RemoteLogs) strings(ctx context.Context, path, name string, p logs.LabelParams) ([]string, error) {
	set := map[string]struct{}{}
	err := r.lookup(ctx, path, name, p, func(dec *json.Decoder) error {
		var vs []string
		if err := dec.Decode(&vs); err != nil {
			return err
		}
		for _, v := range vs {
			set[v] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	slices.Sort(out)
	return out, nil
}

// LabelNames implements logs.Querier.
func (r *RemoteLogs) LabelNames(ctx context.Context, p logs.LabelParams) ([]string, error) {
	return r.strings(ctx, logsLabelNamesPath, "", p)
}

// LabelValues implements logs.Querier.
func (r *RemoteLogs) LabelValues(ctx context.Context, name string, p logs.LabelParams) ([]string, error) {
	return r.strings(ctx, logsLabelValuesPath, name, p)
}

// Series implements logs.Querier.
func (r *RemoteLogs) Series(ctx context.Context, p logs.LabelParams) ([]labels.Labels, error) {
	seen := map[string]labels.Labels{}
	err := r.lookup(ctx, logsSeriesPath, "", p, func(dec *json.Decoder) error {
		var sets []map[string]string
		if err := dec.Decode(&sets); err != nil {
			return err
		}
		for _, m := range sets {
			ls := labels.FromMap(m)
			seen[ls.String()] = ls
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]labels.Labels, 0, len(seen))
	for _, ls := range seen {
		out = append(out, ls)
	}
	slices.SortFunc(out, labels.Compare)
	return out, nil
}

// DedupLogs wraps a local log store so that selections drop exact
// duplicate entries, which at-least-once delivery can store. When q is a
// logs.Streamer, so is the wrapper: SelectStream passes through as it is,
// since logs.Streamer leaves removing duplicates to its caller (the LogQL
// engine drops them per series).
func DedupLogs(q logs.Querier) logs.Querier {
	if st, ok := q.(logs.Streamer); ok {
		return dedupStreamLogs{dedupLogs{q}, st}
	}
	return dedupLogs{q}
}

type dedupStreamLogs struct {
	dedupLogs
	st logs.Streamer
}

func (d dedupStreamLogs) SelectStream(ctx context.Context, p logs.SelectParams, fn func(ls labels.Labels, e *logs.Entry) error) error {
	return d.st.SelectStream(ctx, p, fn)
}

type dedupLogs struct{ logs.Querier }

func (d dedupLogs) Select(ctx context.Context, p logs.SelectParams) ([]logs.Stream, error) {
	streams, err := d.Querier.Select(ctx, p)
	if err != nil {
		return nil, err
	}
	return MergeStreams([][]logs.Stream{streams}, p.Direction, p.Limit), nil
}

const logsStreamPath = "/internal/v1/logs/stream"

// SelectStream implements logs.Streamer over the aggregators' streaming
// select: each one's entries are read frame by frame and handed to fn (one
// call at a time), so a metric query reads every entry once whatever the
// range. Replicas and former owners send the same entries: fn's caller
// removes duplicates, as the interface says. An aggregator without the
// streaming endpoint fails like one that is down.
func (r *RemoteLogs) SelectStream(ctx context.Context, p logs.SelectParams, fn func(ls labels.Labels, e *logs.Entry) error) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if p.Limit != 0 {
		return fmt.Errorf("SelectStream: limit must be 0, got %d", p.Limit)
	}
	req := logsSelectRequest{Tenant: p.Tenant, Selector: matchersString(p.Matchers), Start: p.Start, End: p.End, LineFilters: p.LineFilters}
	var (
		mu     sync.Mutex // serialises fn
		fnErr  error
		stopFn = errors.New("stopped by the caller")
	)
	err := r.fanOut(ctx, func(ctx context.Context, ep Endpoint) error {
		resp, err := r.post(ctx, ep, logsStreamPath, req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		dec := codec.NewLogsDecoder(maxLogsResponseBytes)
		encoding := resp.Header.Get("Pharos-Encoding")
		buf := make([]byte, 0, 64<<10)
		for {
			n, err := binary.ReadUvarint(br)
			if err != nil {
				return fmt.Errorf("log stream ended early: %w", err)
			}
			if n == 0 {
				return nil
			}
			if n > maxLogsResponseBytes {
				return fmt.Errorf("log stream frame of %d bytes", n)
			}
			buf = slices.Grow(buf[:0], int(n))[:n]
			if _, err := io.ReadFull(br, buf); err != nil {
				return fmt.Errorf("log stream ended early: %w", err)
			}
			streams, err := dec.Decode(encoding, buf)
			if err != nil {
				return fmt.Errorf("decode log stream: %w", err)
			}
			mu.Lock()
			if fnErr == nil {
				for i := range streams {
					for j := range streams[i].Entries {
						if fnErr = fn(streams[i].Labels, &streams[i].Entries[j]); fnErr != nil {
							break
						}
					}
					if fnErr != nil {
						break
					}
				}
			}
			failed := fnErr != nil
			mu.Unlock()
			if failed {
				return stopFn
			}
		}
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

var _ logs.Streamer = (*RemoteLogs)(nil)
