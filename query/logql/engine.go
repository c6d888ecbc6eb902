// Package logql parses and evaluates LogQL, Loki's query language, over a
// logs.Querier: log queries (a stream selector and a pipeline) return
// streams, metric queries (range and vector aggregations, binary
// operations) return Prometheus values.
//
// Valid LogQL that Pharos does not evaluate is rejected at parse time with
// an *UnsupportedError naming the feature, so a user can tell a missing
// feature from a typo.
package logql

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/pharos-obs/pharos/query/limits"
	"github.com/pharos-obs/pharos/storage/logs"
)

// Defaults of EngineOpts, Loki's where Loki has one.
const (
	DefaultMaxEntries = 5000
	DefaultMaxSeries  = 500
	DefaultTimeout    = 2 * time.Minute
	DefaultBatchSize  = 10000
	// MaxPoints is the most steps a range query may have, as in Loki and
	// Prometheus.
	MaxPoints = 11000
)

// The flags of the limits, named in their errors.
const (
	FlagMaxEntries = "-query.logql.max-entries-limit-per-query"
	FlagMaxSeries  = "-query.logql.max-query-series"
	FlagTimeout    = "-query.logql.timeout"
	FlagMaxBytes   = "-query.logql.max-fetched-bytes-per-query"
)

// EngineOpts limit and tune query evaluation. Zero values take the defaults.
type EngineOpts struct {
	// MaxEntries is the largest limit a log query may ask for (Loki's
	// max_entries_limit_per_query).
	MaxEntries int `yaml:"max_entries_limit_per_query"`
	// MaxSeries is the most series a metric query may return (Loki's
	// max_query_series).
	MaxSeries int `yaml:"max_query_series"`
	// Timeout bounds each query.
	Timeout time.Duration `yaml:"query_timeout"`
	// MaxBytesRead bounds the bytes of log lines one query reads from the
	// store (Loki's max_query_bytes_read; 0: unbounded).
	MaxBytesRead int64 `yaml:"max_fetched_bytes_per_query"`
	// BatchSize is how many entries one Select returns when the engine
	// pages through a time range, which bounds the memory a query holds.
	BatchSize int `yaml:"select_batch_size"`
}

// RegisterFlags registers the options under -query.logql.
func (o *EngineOpts) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&o.MaxEntries, "query.logql.max-entries-limit-per-query", DefaultMaxEntries, "Largest limit a LogQL log query may ask for.")
	f.IntVar(&o.MaxSeries, "query.logql.max-query-series", DefaultMaxSeries, "Most series a LogQL metric query may return.")
	f.DurationVar(&o.Timeout, "query.logql.timeout", DefaultTimeout, "Longest time a LogQL query may run.")
	f.Int64Var(&o.MaxBytesRead, "query.logql.max-fetched-bytes-per-query", 0, "Most bytes of log lines one LogQL query may read from the log store (or receive from aggregators); 0 is unbounded. Past it the query fails with 400.")
	f.IntVar(&o.BatchSize, "query.logql.select-batch-size", DefaultBatchSize, "Entries the LogQL engine reads from the log store per request when paging through a time range.")
}

// Validate reports every invalid field.
func (o *EngineOpts) Validate() error {
	var errs []error
	if o.MaxEntries < 0 {
		errs = append(errs, fmt.Errorf("query.logql.max_entries_limit_per_query: must not be negative, got %d", o.MaxEntries))
	}
	if o.MaxSeries < 0 {
		errs = append(errs, fmt.Errorf("query.logql.max_query_series: must not be negative, got %d", o.MaxSeries))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("query.logql.query_timeout: must not be negative, got %s", o.Timeout))
	}
	if o.MaxBytesRead < 0 {
		errs = append(errs, fmt.Errorf("query.logql.max_fetched_bytes_per_query: must not be negative, got %d", o.MaxBytesRead))
	}
	if o.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("query.logql.select_batch_size: must not be negative, got %d", o.BatchSize))
	}
	return errors.Join(errs...)
}

// Engine evaluates LogQL. It holds no per-query state and is safe for
// concurrent use.
type Engine struct {
	opts EngineOpts
}

// NewEngine returns an engine; zero options take the defaults.
func NewEngine(opts EngineOpts) *Engine {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.MaxSeries <= 0 {
		opts.MaxSeries = DefaultMaxSeries
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	return &Engine{opts: opts}
}

// Opts returns the engine's options with defaults applied.
func (e *Engine) Opts() EngineOpts { return e.opts }

// Params say what to evaluate. A metric range query has Step > 0 and
// evaluates at Start, Start+Step, ... up to End; an instant query has
// Start == End and Step == 0. A log query reads [Start, End) and ignores
// Step; it cannot be an instant query.
type Params struct {
	Query      string
	Start, End time.Time
	Step       time.Duration
	// Limit caps the entries of a log query (0: MaxEntries).
	Limit int
	// Direction orders a log query's entries.
	Direction logs.Direction
	// CategorizeLabels groups a log query's streams by stream labels only and
	// reports each entry's structured metadata and parsed labels apart, for
	// Loki's categorize-labels response encoding.
	CategorizeLabels bool
}

// Instant reports whether p is an instant query.
func (p Params) Instant() bool { return p.Step == 0 && p.Start.Equal(p.End) }

// ValueTypeStreams is the result type of log queries.
const ValueTypeStreams parser.ValueType = "streams"

// Streams is a log query's result: streams sorted by labels, each with
// its entries in the query's direction.
type Streams []Stream

// Type implements parser.Value.
func (Streams) Type() parser.ValueType { return ValueTypeStreams }

func (s Streams) String() string { return fmt.Sprintf("%d streams", len(s)) }

// Stream is a label set and its entries.
type Stream struct {
	// Labels are the entries' final labels: the stream's, the structured
	// metadata's and the parsed ones (only the stream's with
	// Params.CategorizeLabels).
	Labels  labels.Labels
	Entries []Entry
}

// Entry is one log entry of a result.
type Entry struct {
	Timestamp int64 // Unix ns
	Line      string
	// StructuredMetadata and Parsed are set with Params.CategorizeLabels.
	StructuredMetadata labels.Labels
	Parsed             labels.Labels
}

// Stats describe the work a query did.
type Stats struct {
	ExecTime time.Duration
	// LinesProcessed and BytesProcessed count what the store returned.
	LinesProcessed int64
	BytesProcessed int64
	// PostFilterLines passed the whole pipeline.
	PostFilterLines int64
	// EntriesReturned is the number of entries in a log query's result.
	EntriesReturned int64
}

// Result is a query's value: Streams for log queries; promql.Matrix (range),
// promql.Vector or promql.Scalar (instant) for metric queries.
type Result struct {
	Data  parser.Value
	Stats Stats
}

// Query parses and evaluates p.Query for tenant against q.
func (e *Engine) Query(ctx context.Context, q logs.Querier, tenant string, p Params) (Result, error) {
	expr, err := Parse(p.Query)
	if err != nil {
		return Result{}, err
	}
	return e.Exec(ctx, q, tenant, expr, p)
}

// Exec evaluates a parsed expression; p.Query is ignored.
func (e *Engine) Exec(ctx context.Context, q logs.Querier, tenant string, expr Expr, p Params) (Result, error) {
	began := time.Now()
	if err := e.checkParams(p); err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	ev := &evaluator{
		ctx:    ctx,
		opts:   e.opts,
		q:      q,
		tenant: tenant,
		p:      p,
		start:  p.Start.UnixNano(),
		end:    p.End.UnixNano(),
		step:   int64(p.Step),
	}
	var res Result
	switch expr := expr.(type) {
	case *LogSelectorExpr:
		if p.Instant() {
			return Result{}, ErrInstantLogQuery
		}
		if p.Limit > e.opts.MaxEntries {
			return Result{}, MaxEntriesError(p.Limit, e.opts.MaxEntries)
		}
		streams, err := ev.evalLogs(expr)
		if err != nil {
			return Result{}, err
		}
		res.Data = streams
	case SampleExpr:
		// Log queries ignore the step, so only metric queries are bound by it.
		if p.Step == 0 && !p.Start.Equal(p.End) {
			return Result{}, &LimitError{Msg: "zero or negative query resolution step widths are not accepted. Try a positive integer"}
		}
		if p.Step > 0 && int64(p.End.Sub(p.Start)/p.Step) >= MaxPoints {
			return Result{}, &LimitError{Msg: fmt.Sprintf("exceeded maximum resolution of %d points per timeseries. Try decreasing the query resolution (?step=XX)", MaxPoints)}
		}
		v, err := ev.evalMetric(expr)
		if err != nil {
			return Result{}, err
		}
		res.Data = v
	default:
		return Result{}, fmt.Errorf("logql: unknown expression %T", expr)
	}
	res.Stats = ev.stats
	res.Stats.ExecTime = time.Since(began)
	return res, nil
}

func (e *Engine) checkParams(p Params) error {
	if p.End.Before(p.Start) {
		return &LimitError{Msg: "end timestamp must not be before start time"}
	}
	if p.Step < 0 {
		return &LimitError{Msg: "zero or negative query resolution step widths are not accepted. Try a positive integer"}
	}
	if p.Limit < 0 {
		return &LimitError{Msg: "limit must be a positive value"}
	}
	return nil
}

// InstantVector evaluates a metric query at t, the way an alerting or
// recording rule does; a scalar result becomes one sample without labels,
// as in Prometheus's rules.EngineQueryFunc.
func (e *Engine) InstantVector(ctx context.Context, q logs.Querier, tenant, query string, t time.Time) (promql.Vector, error) {
	expr, err := ParseSampleExpr(query)
	if err != nil {
		return nil, err
	}
	res, err := e.Exec(ctx, q, tenant, expr, Params{Start: t, End: t})
	if err != nil {
		return nil, err
	}
	switch v := res.Data.(type) {
	case promql.Vector:
		return v, nil
	case promql.Scalar:
		return promql.Vector{{T: v.T, F: v.V, Metric: labels.EmptyLabels()}}, nil
	}
	return nil, fmt.Errorf("logql: rule query %q returned %s, want a vector", query, res.Data.Type())
}

// evaluator is the state of one query.
type evaluator struct {
	ctx    context.Context
	opts   EngineOpts
	q      logs.Querier
	tenant string
	p      Params
	// start, end and step in Unix ns.
	start, end, step int64
	stats            Stats
	// capSeries says the query is a bare range aggregation (see evalMetric).
	capSeries bool
}

// scan selects [sp.Start, sp.End) page by page in sp.Direction order and
// hands each page to fn until fn returns false. Pages are disjoint time
// ranges, so the entries of a later page all come after those of earlier
// ones: a caller collecting `limit` entries can stop early, and memory
// stays bounded by the batch size.
func (ev *evaluator) scan(sp logs.SelectParams, fn func([]logs.Stream) bool) error {
	batch := ev.opts.BatchSize
	for sp.Start < sp.End {
		if err := ev.ctx.Err(); err != nil {
			return err
		}
		page := sp
		page.Limit = batch
		streams, err := ev.selectStreams(page)
		if err != nil {
			return err
		}
		n := 0
		for _, s := range streams {
			n += len(s.Entries)
		}
		if n < batch {
			fn(streams)
			return nil
		}
		// A full page: entries at the boundary timestamp may continue past
		// it, so hold them back for the next page, which starts there.
		forward := sp.Direction == logs.Forward
		boundary := int64(0)
		first := true
		for _, s := range streams {
			if len(s.Entries) == 0 {
				continue
			}
			ts := s.Entries[len(s.Entries)-1].Timestamp
			if first || (forward && ts > boundary) || (!forward && ts < boundary) {
				boundary, first = ts, false
			}
		}
		trimmed := streams[:0:0]
		for _, s := range streams {
			k := len(s.Entries)
			for k > 0 && s.Entries[k-1].Timestamp == boundary {
				k--
			}
			if k > 0 {
				trimmed = append(trimmed, logs.Stream{Labels: s.Labels, Entries: s.Entries[:k]})
			}
		}
		if len(trimmed) == 0 {
			// Every entry shares one timestamp: read that nanosecond whole.
			one := sp
			one.Start, one.End, one.Limit = boundary, boundary+1, 0
			if streams, err = ev.selectStreams(one); err != nil {
				return err
			}
			if !fn(streams) {
				return nil
			}
			if forward {
				sp.Start = boundary + 1
			} else {
				sp.End = boundary
			}
			continue
		}
		if !fn(trimmed) {
			return nil
		}
		if forward {
			sp.Start = boundary
		} else {
			sp.End = boundary + 1
		}
	}
	return nil
}

func (ev *evaluator) selectStreams(sp logs.SelectParams) ([]logs.Stream, error) {
	streams, err := ev.q.Select(ev.ctx, sp)
	if err != nil {
		return nil, fmt.Errorf("select logs: %w", err)
	}
	for _, s := range streams {
		ev.stats.LinesProcessed += int64(len(s.Entries))
		for _, e := range s.Entries {
			ev.stats.BytesProcessed += int64(len(e.Line))
		}
	}
	if err := ev.checkBytes(); err != nil {
		return nil, err
	}
	return streams, nil
}

// checkBytes stops a query that has read more than MaxBytesRead.
func (ev *evaluator) checkBytes() error {
	if max := ev.opts.MaxBytesRead; max > 0 && ev.stats.BytesProcessed > max {
		return &limits.Error{
			Limit: limits.Bytes, Flag: FlagMaxBytes, Value: strconv.FormatInt(max, 10),
			Msg: fmt.Sprintf("the query would read too many bytes (read: %d, limit: %d); consider adding more specific stream selectors or reduce the time range of the query", ev.stats.BytesProcessed, max),
		}
	}
	return nil
}

// MaxEntriesError is a log query (or tail) asking for more entries than the
// engine allows, in Loki's words.
func MaxEntriesError(limit, maxEntries int) error {
	return &limits.Error{
		Limit: limits.LogLines, Flag: FlagMaxEntries, Value: strconv.Itoa(maxEntries),
		Msg: fmt.Sprintf("max entries limit per query exceeded, limit > max_entries_limit_per_query (%d > %d)", limit, maxEntries),
	}
}

// sortStreams orders streams by labels, as Loki returns them.
func sortStreams(s Streams) {
	slices.SortFunc(s, func(a, b Stream) int { return labels.Compare(a.Labels, b.Labels) })
}
