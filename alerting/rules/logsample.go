package rules

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	promrules "github.com/prometheus/prometheus/rules"

	"github.com/pharos-obs/pharos/query/logql"
	"github.com/pharos-obs/pharos/storage/logs"
)

// SampleLinesAnnotation is the annotation that the notifications of firing
// log alerts carry: the most recent lines (at most 5, each cut to 512
// bytes, oldest first, one per line) that the rule's log selector and
// pipeline return over the rule's range, for the alert's labels. A rule
// that sets this annotation itself keeps its own.
const SampleLinesAnnotation = "sample_lines"

// Bounds of the sample: a notification is no place for a log dump.
const (
	maxSampleLines     = 5
	maxSampleLineBytes = 512
	// sampleWorkers bounds the look-ups one notification runs at once.
	sampleWorkers = 4
	// maxSampleInflight bounds, roughly (groups notify concurrently), the
	// look-ups running at once across notifications, those that outlived
	// theirs included: a store that ignores cancellation cannot pile
	// goroutines up.
	maxSampleInflight = 16
)

// Results of sample look-ups (pharos_rules_log_samples_total).
const (
	sampleAdded   = "added"   // the annotation was added
	sampleEmpty   = "empty"   // no line matched: no annotation
	sampleFailed  = "failed"  // the look-up failed: no annotation
	sampleTimeout = "timeout" // not done in time: sent without
)

// sampleRule is how the sample of one log alerting rule is read: the log
// selector and pipeline of the first range aggregation of its expression,
// over that aggregation's range.
type sampleRule struct {
	// tenant is the log store key (tenant.Key) of the logs the rule reads.
	tenant string
	sel    *logql.LogSelectorExpr
	rng    time.Duration
	// offset is the range's offset plus the group's query offset: the
	// window ends that long before the evaluation.
	offset time.Duration
	// ruleLabels are the names of the labels the group and the rule set:
	// an alert's other labels come from the query's result, and select
	// its lines.
	ruleLabels map[string]struct{}
}

// sampleIndex holds the log alerting rules of every loaded file of every
// tenant, by sampleKey. It is immutable once built.
type sampleIndex map[string]*sampleRule

// sampleKey identifies a rule in a notification: the group's key
// (TenantGroupKey, from the context's origin and tenant), the alert name
// and the expression.
func sampleKey(groupKey, alertName, expr string) string {
	return groupKey + "\xff" + alertName + "\xff" + expr
}

// sampleSource is the loaded log rule files of one rule set.
type sampleSource struct {
	tenantID   string // whose rules they are
	logsTenant string // the log store key the rules read
	files      map[string]*rulefmt.RuleGroups
}

// buildSampleIndex indexes the alerting rules of loaded log rule files.
// A rule whose expression has no range aggregation (a literal) gets no
// sample.
func buildSampleIndex(srcs []sampleSource) sampleIndex {
	idx := sampleIndex{}
	for _, src := range srcs {
		src.index(idx)
	}
	return idx
}

func (src sampleSource) index(idx sampleIndex) {
	for file, rgs := range src.files {
		if rgs == nil {
			continue
		}
		for _, g := range rgs.Groups {
			gk := TenantGroupKey(src.tenantID, file, g.Name)
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				se, err := logql.ParseSampleExpr(r.Expr)
				if err != nil {
					continue // validated at load: not expected
				}
				lr := firstRange(se)
				if lr == nil {
					continue
				}
				key := sampleKey(gk, r.Alert, r.Expr)
				sr := idx[key]
				if sr == nil {
					sr = &sampleRule{tenant: src.logsTenant, sel: lr.Selector, rng: lr.Range, offset: lr.Offset, ruleLabels: map[string]struct{}{}}
					if g.QueryOffset != nil {
						sr.offset += time.Duration(*g.QueryOffset)
					}
					idx[key] = sr
				}
				// Rules alike but for their labels share an entry: none of
				// their labels select lines.
				for name := range g.Labels {
					sr.ruleLabels[name] = struct{}{}
				}
				for name := range r.Labels {
					sr.ruleLabels[name] = struct{}{}
				}
			}
		}
	}
}

// firstRange returns the first range aggregation's range of e, in query
// order (the left operand of a ratio is usually what the alert is about),
// or nil.
func firstRange(e logql.SampleExpr) *logql.LogRangeExpr {
	switch e := e.(type) {
	case *logql.RangeAggregationExpr:
		return e.Range
	case *logql.VectorAggregationExpr:
		return firstRange(e.Expr)
	case *logql.BinaryExpr:
		if r := firstRange(e.LHS); r != nil {
			return r
		}
		return firstRange(e.RHS)
	}
	return nil
}

// sampler adds SampleLinesAnnotation to the firing alerts of log rules'
// notifications. Notifications are sent from the groups' evaluation
// goroutines, so a look-up delays the group: each notification waits at
// most timeout for its look-ups, then goes without the samples not found
// in time. Look-ups still running then are cancelled and tracked by wg,
// which the Manager waits for when it stops.
type sampler struct {
	engine  *logql.Engine
	q       logs.Querier
	timeout time.Duration
	logger  *slog.Logger
	results *prometheus.CounterVec
	// index is replaced on each load of the rule files; notifications
	// read it without a lock (Manager.mu is held while the rules manager
	// waits for groups, which may be notifying).
	index atomic.Pointer[sampleIndex]
	// inflight counts the running look-up workers; wg tracks them.
	inflight atomic.Int64
	wg       sync.WaitGroup
}

// sampleJob is one alert to sample. It holds copies: a look-up that
// outlives its notification touches nothing the notification sends.
type sampleJob struct {
	i    int
	rule *sampleRule
	lbls labels.Labels
	ts   time.Time
}

type sampleResult struct {
	i    int
	text string
	err  error
}

// annotate adds the samples to the firing alerts (the Manager's copies,
// about to be sent) of the rule with expression expr, in the group of
// ctx's origin. It returns within s.timeout.
func (s *sampler) annotate(ctx context.Context, expr string, alerts []*promrules.Alert) {
	if s == nil || s.timeout <= 0 || len(alerts) == 0 {
		return
	}
	gk, ok := groupFromContext(ctx)
	idx := s.index.Load()
	if !ok || idx == nil {
		return
	}
	var jobs []sampleJob
	for i, a := range alerts {
		if a.State != promrules.StateFiring || a.Annotations.Has(SampleLinesAnnotation) {
			continue
		}
		r := (*idx)[sampleKey(gk, a.Labels.Get(labels.AlertName), expr)]
		if r == nil {
			continue
		}
		ts := a.LastSentAt // the evaluation that sends it
		if ts.IsZero() {
			ts = time.Now()
		}
		jobs = append(jobs, sampleJob{i: i, rule: r, lbls: a.Labels, ts: ts})
	}
	if len(jobs) == 0 {
		return
	}

	workers := min(sampleWorkers, len(jobs))
	if s.inflight.Load()+int64(workers) > maxSampleInflight {
		// Earlier look-ups still hang: these would too.
		s.results.WithLabelValues(sampleTimeout).Add(float64(len(jobs)))
		s.logger.Warn("log alerts notified without their sample lines: earlier look-ups still running",
			"group", gk, "alerts", len(jobs), "running", s.inflight.Load())
		return
	}

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel() // stragglers stop
	todo := make(chan sampleJob, len(jobs))
	for _, j := range jobs {
		todo <- j
	}
	close(todo)
	// Buffered for every job: a worker never blocks on a notification
	// that left.
	done := make(chan sampleResult, len(jobs))
	for range workers {
		s.wg.Add(1)
		s.inflight.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.inflight.Add(-1)
			for j := range todo {
				if err := ctx.Err(); err != nil {
					done <- sampleResult{i: j.i, err: err}
					continue
				}
				text, err := s.sample(ctx, j)
				done <- sampleResult{i: j.i, text: text, err: err}
			}
		}()
	}

	var (
		counts   = map[string]int{}
		firstErr error
	)
	pending := len(jobs)
collect:
	for pending > 0 {
		select {
		case r := <-done:
			pending--
			switch {
			case r.err != nil && ctx.Err() != nil:
				counts[sampleTimeout]++
			case r.err != nil:
				counts[sampleFailed]++
				if firstErr == nil {
					firstErr = r.err
				}
			case r.text == "":
				counts[sampleEmpty]++
			default:
				counts[sampleAdded]++
				a := alerts[r.i]
				a.Annotations = labels.NewBuilder(a.Annotations).Set(SampleLinesAnnotation, r.text).Labels()
			}
		case <-ctx.Done():
			counts[sampleTimeout] += pending
			break collect
		}
	}
	for result, n := range counts {
		s.results.WithLabelValues(result).Add(float64(n))
	}
	if counts[sampleFailed] > 0 || counts[sampleTimeout] > 0 {
		s.logger.Warn("log alerts notified without their sample lines",
			"group", gk, "failed", counts[sampleFailed], "timed_out", counts[sampleTimeout], "timeout", s.timeout, "err", firstErr)
	}
}

// sample reads the most recent lines of j's rule's selector and pipeline
// over the rule's range before j.ts, among those whose labels agree with
// the alert's: a label filter per alert label that comes from the query
// (not alertname, not the rule's own labels), so that the alert of
// sum by (app) (…) for app="api" shows api's lines, parsed labels too.
func (s *sampler) sample(ctx context.Context, j sampleJob) (string, error) {
	r := j.rule
	pipeline := slices.Clone(r.sel.Pipeline)
	j.lbls.Range(func(l labels.Label) {
		if l.Name == labels.AlertName || strings.HasPrefix(l.Name, "__") {
			return
		}
		if _, ok := r.ruleLabels[l.Name]; ok {
			return
		}
		pipeline = append(pipeline, &logql.LabelFilterStage{Filter: &logql.StringLabelFilter{
			Matcher: labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value),
		}})
	})
	end := j.ts.Add(-r.offset)
	res, err := s.engine.Exec(ctx, s.q, r.tenant, &logql.LogSelectorExpr{Matchers: r.sel.Matchers, Pipeline: pipeline}, logql.Params{
		Start:     end.Add(-r.rng),
		End:       end,
		Limit:     maxSampleLines,
		Direction: logs.Backward,
	})
	if err != nil {
		return "", err
	}
	streams, _ := res.Data.(logql.Streams)
	type line struct {
		ts   int64
		text string
	}
	var lines []line
	for _, st := range streams {
		for _, e := range st.Entries {
			lines = append(lines, line{e.Timestamp, e.Line})
		}
	}
	slices.SortStableFunc(lines, func(a, b line) int { return cmp.Compare(b.ts, a.ts) }) // newest first
	lines = lines[:min(len(lines), maxSampleLines)]
	slices.Reverse(lines) // oldest first, as a log reads
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(sampleLine(l.text))
	}
	return b.String(), nil
}

// sampleLine makes a log line fit an annotation: valid UTF-8 (an alert
// with an invalid annotation is dropped whole), its own newlines escaped
// (lines are separated by newlines), at most maxSampleLineBytes, cut at a
// character boundary and ended with "…" when cut.
func sampleLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", `\n`)
	s = strings.ReplaceAll(s, "\n", `\n`)
	if len(s) <= maxSampleLineBytes {
		return s
	}
	const ellipsis = "…"
	cut := maxSampleLineBytes - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
