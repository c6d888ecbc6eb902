package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/pharos-obs/pharos/internal/tenant"
	"github.com/pharos-obs/pharos/query/limits"
)

// Internal read API paths of the aggregators (see aggregator/readapi.go;
// the two packages meet only on the wire).
const (
	readPath        = "/internal/v1/read"
	labelNamesPath  = "/internal/v1/labels"
	labelValuesPath = "/internal/v1/label_values"
	metadataPath    = "/internal/v1/metadata"
)

// Remote is a storage.Queryable over the internal read API of a set of
// aggregators. Series are read from all of them and merged; identical
// samples from several aggregators (replicas, former owners) collapse into
// one.
//
// The set is asked for at every query, so it follows the ring. An
// aggregator that fails is left out with a warning naming it and what it
// holds (Prometheus's "warnings" in the response), or fails the query when
// partial responses are off — unless the endpoint is Redundant, in which
// case another aggregator answers for all it holds and nothing is missing.
type Remote struct {
	endpoints EndpointsFunc
	timeout   time.Duration
	partial   bool
	scheme    string
	httpCfg   config_util.HTTPClientConfig

	mu      sync.Mutex
	clients map[string]*aggregatorClient
}

// Endpoint is an aggregator the fan-out reads from.
type Endpoint struct {
	// Name identifies it in warnings (its ring instance ID).
	Name string
	// Addr is the host:port of its HTTP read API.
	Addr string
	// Redundant means every partition-replica it may hold has another
	// replica on an endpoint that is believed to be up: its failure loses
	// nothing, so it is not reported.
	Redundant bool
	// Holds says what it may hold, for the warning when it fails (for
	// example "partitions 1, 5"); empty when unknown.
	Holds string
}

// EndpointsFunc returns the aggregators to read from now.
type EndpointsFunc func() []Endpoint

// StaticEndpoints reads from a fixed list of host:port addresses.
func StaticEndpoints(addrs []string) EndpointsFunc {
	eps := make([]Endpoint, len(addrs))
	for i, a := range addrs {
		eps[i] = Endpoint{Name: a, Addr: a}
	}
	return func() []Endpoint { return eps }
}

type aggregatorClient struct {
	base    *url.URL
	samples storage.SampleAndChunkQueryable
	http    *http.Client
}

// RemoteOption configures a Remote.
type RemoteOption func(*Remote)

// WithHTTPClientConfig makes the reads use scheme ("http" or "https") and
// the client configuration hc (credentials, TLS) instead of plain HTTP
// without credentials.
func WithHTTPClientConfig(scheme string, hc config_util.HTTPClientConfig) RemoteOption {
	return func(r *Remote) { r.scheme, r.httpCfg = scheme, hc }
}

// NewRemote reads from the aggregators endpoints returns, each read
// bounded by timeout. With partial set, a failing aggregator becomes a
// warning; without, an error.
func NewRemote(endpoints EndpointsFunc, timeout time.Duration, partial bool, opts ...RemoteOption) *Remote {
	r := &Remote{endpoints: endpoints, timeout: timeout, partial: partial, scheme: "http", httpCfg: config_util.DefaultHTTPClientConfig, clients: map[string]*aggregatorClient{}}
	for _, o := range opts {
		o(r)
	}
	return r
}

func (r *Remote) client(addr string) (*aggregatorClient, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clients[addr]; ok {
		return c, nil
	}
	base, err := url.Parse(r.scheme + "://" + addr)
	if err != nil || base.Host == "" {
		return nil, fmt.Errorf("aggregator address %q: invalid", addr)
	}
	readURL := *base
	readURL.Path = readPath
	rc, err := remote.NewReadClient("aggregator-"+addr, &remote.ClientConfig{
		URL:              &config_util.URL{URL: &readURL},
		Timeout:          model.Duration(r.timeout),
		HTTPClientConfig: r.httpCfg,
		ChunkedReadLimit: 1 << 30,
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{
			prompb.ReadRequest_STREAMED_XOR_CHUNKS, prompb.ReadRequest_SAMPLES,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("aggregator %q: %w", addr, err)
	}
	// Response bodies are charged to the query's limits.Budget, which bounds the bytes
	// one query receives (-query.max-fetched-chunk-bytes-per-query).
	if hc, ok := rc.(*remote.Client); ok {
		hc.Client.Transport = tenant.Transport(limits.Transport(hc.Client.Transport))
	} else {
		return nil, fmt.Errorf("aggregator %q: remote read client of type %T cannot forward the tenant", addr, rc)
	}
	// The JSON calls carry the same credentials and TLS as the reads.
	rt, err := config_util.NewRoundTripperFromConfig(r.httpCfg, "aggregator-"+addr)
	if err != nil {
		return nil, fmt.Errorf("aggregator %q: %w", addr, err)
	}
	c := &aggregatorClient{
		base:    base,
		samples: remote.NewSampleAndChunkQueryableClient(rc, labels.EmptyLabels(), nil, true, nil),
		http:    &http.Client{Timeout: r.timeout, Transport: tenant.Transport(limits.Transport(rt))},
	}
	r.clients[addr] = c
	return c, nil
}

// Querier implements storage.Queryable.
func (r *Remote) Querier(mint, maxt int64) (storage.Querier, error) {
	var primaries, secondaries []storage.Querier
	for _, ep := range r.endpoints() {
		c, err := r.client(ep.Addr)
		if err != nil {
			return nil, err
		}
		q, err := c.samples.Querier(mint, maxt)
		if err != nil {
			return nil, err
		}
		aq := &aggregatorQuerier{Querier: q, agg: c, ep: ep, mint: mint, maxt: maxt}
		switch {
		case ep.Redundant:
			secondaries = append(secondaries, quietQuerier{aq})
		case r.partial:
			// A secondary's failure becomes a warning (storage.NewMergeQuerier).
			secondaries = append(secondaries, aq)
		default:
			primaries = append(primaries, aq)
		}
	}
	return reservedLabelQuerier{storage.NewMergeQuerier(primaries, secondaries, storage.ChainedSeriesMerge)}, nil
}

// ErrTenantLabel refuses a query that matches on the label that isolates
// tenants in the aggregators' stores; the aggregators refuse it too, but a
// refusal there would only be a warning under partial responses.
var ErrTenantLabel = errors.New("the label " + tenant.Label + " is reserved for tenant isolation and cannot be queried")

// reservedLabelQuerier refuses queries on tenant.Label before they fan
// out. The tenant itself travels in each request's context, which the
// aggregator clients' transport sends as X-Scope-OrgID.
type reservedLabelQuerier struct{ storage.Querier }

func checkTenantLabel(ms []*labels.Matcher) error {
	for _, m := range ms {
		if m.Name == tenant.Label {
			return ErrTenantLabel
		}
	}
	return nil
}

func (q reservedLabelQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if err := checkTenantLabel(ms); err != nil {
		return storage.ErrSeriesSet(err)
	}
	return q.Querier.Select(ctx, sortSeries, hints, ms...)
}

func (q reservedLabelQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if err := checkTenantLabel(ms); err != nil || name == tenant.Label {
		return nil, nil, ErrTenantLabel
	}
	return q.Querier.LabelValues(ctx, name, hints, ms...)
}

func (q reservedLabelQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if err := checkTenantLabel(ms); err != nil {
		return nil, nil, err
	}
	return q.Querier.LabelNames(ctx, hints, ms...)
}

// Metadata merges the metadata of every aggregator that answers.
func (r *Remote) Metadata(ctx context.Context, metric string, limit, limitPerMetric int) (map[string][]metadata.Metadata, error) {
	out := map[string][]metadata.Metadata{}
	for _, ep := range r.endpoints() {
		a, err := r.client(ep.Addr)
		if err != nil {
			return nil, err
		}
		v := url.Values{}
		v.Set("metric", metric)
		v.Set("limit", strconv.Itoa(limit))
		var md map[string][]metadata.Metadata
		if err := a.getJSON(ctx, metadataPath, v, &md); err != nil {
			if ep.Redundant || r.partial {
				continue // metadata is advisory; the API has no warnings for it
			}
			return nil, err
		}
		for name, ms := range md {
			for _, m := range ms {
				if !slices.Contains(out[name], m) && (limitPerMetric <= 0 || len(out[name]) < limitPerMetric) {
					out[name] = append(out[name], m)
				}
			}
		}
	}
	if limit > 0 && len(out) > limit {
		names := make([]string, 0, len(out))
		for n := range out {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names[limit:] {
			delete(out, n)
		}
	}
	return out, nil
}

func (a *aggregatorClient) getJSON(ctx context.Context, path string, v url.Values, dst any) error {
	u := *a.base
	u.Path = path
	u.RawQuery = v.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("aggregator %s: %w", a.base.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("aggregator %s: %s %s", a.base.Host, path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(dst); err != nil {
		return fmt.Errorf("aggregator %s: decode %s: %w", a.base.Host, path, err)
	}
	return nil
}

// aggregatorQuerier adds label look-ups, which remote read does not offer,
// to the remote-read querier of one aggregator.
type aggregatorQuerier struct {
	storage.Querier
	agg        *aggregatorClient
	ep         Endpoint
	mint, maxt int64
}

// unavailable says which aggregator failed and what may be missing.
func (q *aggregatorQuerier) unavailable(err error) error {
	what := "its data"
	if q.ep.Holds != "" {
		what = q.ep.Holds
	}
	return fmt.Errorf("aggregator %s (%s) unavailable, %s may be missing from this result: %w", q.ep.Name, q.ep.Addr, what, err)
}

// Select wraps the remote read's error with what it means for the result,
// and builds each series' labels once.
func (q *aggregatorQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return &remoteSet{SeriesSet: q.Querier.Select(ctx, sortSeries, hints, ms...), wrap: q.unavailable}
}

// remoteSet is a remote read's series set as the merge needs it. A
// remote-read series converts its protobuf labels on every Labels call,
// allocating, and merging several aggregators' sets compares labels
// O(log n) times per series: without the cache that was a third of a
// querier's CPU, and most of the fan-out's latency.
type remoteSet struct {
	storage.SeriesSet
	wrap func(error) error
	cur  labelledSeries
}

type labelledSeries struct {
	storage.Series
	ls labels.Labels
}

func (s labelledSeries) Labels() labels.Labels { return s.ls }

func (s *remoteSet) Next() bool {
	if !s.SeriesSet.Next() {
		s.cur = labelledSeries{}
		return false
	}
	at := s.SeriesSet.At()
	s.cur = labelledSeries{Series: at, ls: at.Labels()}
	return true
}

func (s *remoteSet) At() storage.Series { return s.cur }

func (s *remoteSet) Err() error {
	if err := s.SeriesSet.Err(); err != nil {
		return s.wrap(err)
	}
	return nil
}

// quietQuerier drops the failures of a redundant aggregator: another one
// answers for everything it holds.
type quietQuerier struct{ q storage.Querier }

func (q quietQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	set := q.q.Select(ctx, sortSeries, hints, ms...)
	return quietSet{set}
}

func (q quietQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	vs, ws, err := q.q.LabelValues(ctx, name, hints, ms...)
	if err != nil {
		return nil, nil, nil
	}
	return vs, ws, nil
}

func (q quietQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	ns, ws, err := q.q.LabelNames(ctx, hints, ms...)
	if err != nil {
		return nil, nil, nil
	}
	return ns, ws, nil
}

func (q quietQuerier) Close() error { return q.q.Close() }

// quietSet ends where its aggregator failed, without an error: the series
// it could not return come from another replica.
type quietSet struct{ storage.SeriesSet }

func (s quietSet) Next() bool { return s.SeriesSet.Err() == nil && s.SeriesSet.Next() }
func (s quietSet) Err() error { return nil }

type labelsResponse struct {
	Values   []string `json:"values"`
	Warnings []string `json:"warnings"`
}

func (q *aggregatorQuerier) labels(ctx context.Context, path, name string, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
	v := url.Values{}
	v.Set("start", strconv.FormatInt(q.mint, 10))
	v.Set("end", strconv.FormatInt(q.maxt, 10))
	if name != "" {
		v.Set("name", name)
	}
	if hints != nil && hints.Limit > 0 {
		v.Set("limit", strconv.Itoa(hints.Limit))
	}
	if len(ms) > 0 {
		v.Add("match[]", matchersString(ms))
	}
	var resp labelsResponse
	if err := q.agg.getJSON(ctx, path, v, &resp); err != nil {
		return nil, nil, q.unavailable(err)
	}
	var ws annotations.Annotations
	for _, w := range resp.Warnings {
		ws.Add(errors.New(w))
	}
	return resp.Values, ws, nil
}

func (q *aggregatorQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.labels(ctx, labelNamesPath, "", hints, ms)
}

func (q *aggregatorQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.labels(ctx, labelValuesPath, name, hints, ms)
}

// matchersString renders matchers as a selector the aggregator re-parses.
func matchersString(ms []*labels.Matcher) string {
	b := []byte{'{'}
	for i, m := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(append(append(b, strconv.Quote(m.Name)...), m.Type.String()...), m.Value)
	}
	return string(append(b, '}'))
}
