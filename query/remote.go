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
	"time"

	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/util/annotations"
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
type Remote struct {
	aggs []*aggregatorClient
}

type aggregatorClient struct {
	base    *url.URL
	samples storage.SampleAndChunkQueryable
	http    *http.Client
}

// NewRemote connects to aggregators at the given host:port addresses.
func NewRemote(addrs []string, timeout time.Duration) (*Remote, error) {
	r := &Remote{}
	for _, a := range addrs {
		base, err := url.Parse("http://" + a)
		if err != nil {
			return nil, fmt.Errorf("aggregator address %q: %w", a, err)
		}
		readURL := *base
		readURL.Path = readPath
		rc, err := remote.NewReadClient("aggregator-"+a, &remote.ClientConfig{
			URL:              &config_util.URL{URL: &readURL},
			Timeout:          model.Duration(timeout),
			HTTPClientConfig: config_util.DefaultHTTPClientConfig,
			ChunkedReadLimit: 1 << 30,
			AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{
				prompb.ReadRequest_STREAMED_XOR_CHUNKS, prompb.ReadRequest_SAMPLES,
			},
		})
		if err != nil {
			return nil, fmt.Errorf("aggregator %q: %w", a, err)
		}
		r.aggs = append(r.aggs, &aggregatorClient{
			base:    base,
			samples: remote.NewSampleAndChunkQueryableClient(rc, labels.EmptyLabels(), nil, true, nil),
			http:    &http.Client{Timeout: timeout},
		})
	}
	return r, nil
}

// Querier implements storage.Queryable.
func (r *Remote) Querier(mint, maxt int64) (storage.Querier, error) {
	qs := make([]storage.Querier, 0, len(r.aggs))
	for _, a := range r.aggs {
		q, err := a.samples.Querier(mint, maxt)
		if err != nil {
			return nil, err
		}
		qs = append(qs, &aggregatorQuerier{Querier: q, agg: a, mint: mint, maxt: maxt})
	}
	return storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge), nil
}

// Metadata merges the metadata of every aggregator.
func (r *Remote) Metadata(ctx context.Context, metric string, limit, limitPerMetric int) (map[string][]metadata.Metadata, error) {
	out := map[string][]metadata.Metadata{}
	for _, a := range r.aggs {
		v := url.Values{}
		v.Set("metric", metric)
		v.Set("limit", strconv.Itoa(limit))
		var md map[string][]metadata.Metadata
		if err := a.getJSON(ctx, metadataPath, v, &md); err != nil {
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
	mint, maxt int64
}

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
		return nil, nil, err
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
