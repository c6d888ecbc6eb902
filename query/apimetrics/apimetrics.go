// Package apimetrics counts and times the requests of the query HTTP APIs, so that every
// API reports them the same way: by endpoint and status code, with the same buckets.
package apimetrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Requests are the request metrics of one HTTP API. It is a prometheus.Collector; its
// methods are safe for concurrent use.
type Requests struct {
	// Total counts requests by endpoint and status code.
	Total *prometheus.CounterVec
	// Duration times requests by endpoint.
	Duration *prometheus.HistogramVec
}

var _ prometheus.Collector = (*Requests)(nil)

// NewRequests returns the metrics <prefix>_requests_total and
// <prefix>_request_duration_seconds, whose help texts name the API ("Prometheus",
// "Loki"). They are registered on reg when it is not nil.
func NewRequests(prefix, api string, reg prometheus.Registerer) (*Requests, error) {
	r := &Requests{
		Total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: prefix + "_requests_total",
			Help: "Requests to the " + api + " HTTP API by endpoint and HTTP status code.",
		}, []string{"endpoint", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: prefix + "_request_duration_seconds",
			Help: "Time to answer a request to the " + api + " HTTP API, including writing the response.",
			// Queries range from sub-millisecond label lookups to minutes-long range queries.
			Buckets:                         []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  100,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"endpoint"}),
	}
	if reg != nil {
		if err := reg.Register(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Observe counts a request to endpoint that was answered with code after d.
func (r *Requests) Observe(endpoint string, code int, d time.Duration) {
	r.Total.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	r.Duration.WithLabelValues(endpoint).Observe(d.Seconds())
}

// Describe implements prometheus.Collector.
func (r *Requests) Describe(ch chan<- *prometheus.Desc) {
	r.Total.Describe(ch)
	r.Duration.Describe(ch)
}

// Collect implements prometheus.Collector.
func (r *Requests) Collect(ch chan<- prometheus.Metric) {
	r.Total.Collect(ch)
	r.Duration.Collect(ch)
}
