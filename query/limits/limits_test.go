package limits

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestBudget(t *testing.T) {
	for _, tc := range []struct {
		name          string
		limits        BudgetLimits
		series, bytes int64
		wantLimit     string
	}{
		{"unbounded", BudgetLimits{}, 1e6, 1e9, ""},
		{"series at the limit", BudgetLimits{MaxSeries: 3, SeriesFlag: "-s"}, 3, 0, ""},
		{"series past the limit", BudgetLimits{MaxSeries: 3, SeriesFlag: "-s"}, 4, 0, Series},
		{"bytes at the limit", BudgetLimits{MaxBytes: 100, BytesFlag: "-b"}, 0, 100, ""},
		{"bytes past the limit", BudgetLimits{MaxBytes: 100, BytesFlag: "-b"}, 0, 101, Bytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBudget(tc.limits)
			var err error
			for range tc.series {
				if err = b.AddSeries(1); err != nil {
					break
				}
			}
			if err == nil {
				err = b.AddBytes(tc.bytes)
			}
			if tc.wantLimit == "" {
				require.NoError(t, err)
				require.NoError(t, b.Err())
				return
			}
			le := As(err)
			require.NotNil(t, le, "%v", err)
			require.Equal(t, tc.wantLimit, le.Limit)
			require.Contains(t, le.Error(), "(limit -")
			require.Equal(t, err, b.Err(), "the budget remembers the first limit")
		})
	}
}

func TestGate(t *testing.T) {
	g := NewGate(1, 10*time.Millisecond, "-x.max-concurrent", "-x.max-queue-wait")
	release, err := g.Acquire(t.Context())
	require.NoError(t, err)

	_, err = g.Acquire(t.Context())
	le := As(err)
	require.NotNil(t, le, "%v", err)
	require.Equal(t, Concurrency, le.Limit)
	require.Equal(t, "1", RetryAfterSeconds(le.RetryAfter))
	require.Contains(t, le.Error(), "(limit -x.max-concurrent=1)")
	require.Contains(t, le.Error(), "-x.max-queue-wait")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = g.Acquire(ctx)
	require.ErrorIs(t, err, context.Canceled, "a client gone while waiting is no limit")

	release()
	release, err = g.Acquire(t.Context())
	require.NoError(t, err)
	release()
}

func TestTransportCountsBodies(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("x", 1000))
	}))
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: Transport(&http.Transport{DisableKeepAlives: true})}
	get := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		require.NoError(t, err)
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		return err
	}
	for _, tc := range []struct {
		name     string
		maxBytes int64
		wantErr  bool
	}{
		{"no budget", 0, false},
		{"under the limit", 1000, false},
		{"over the limit", 999, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := WithBudget(t.Context(), NewBudget(BudgetLimits{MaxBytes: tc.maxBytes, BytesFlag: "-b"}))
			err := get(ctx)
			if !tc.wantErr {
				require.NoError(t, err)
				return
			}
			require.NotNil(t, As(err), "%v", err)
			require.Equal(t, Bytes, As(err).Limit)
		})
	}
}

func TestMetricsShared(t *testing.T) {
	reg := prometheus.NewRegistry()
	m1, err := NewMetrics(reg)
	require.NoError(t, err)
	m2, err := NewMetrics(reg)
	require.NoError(t, err, "the second API reuses the counter")
	require.Nil(t, m1.Observe(APIPrometheus, context.Canceled))
	require.NotNil(t, m1.Observe(APIPrometheus, &Error{Limit: Series}))
	m2.Inc(APILoki, Concurrency)
	require.Equal(t, 1.0, testutil.ToFloat64(m1.limited.WithLabelValues(APIPrometheus, Series)))
	require.Equal(t, 1.0, testutil.ToFloat64(m1.limited.WithLabelValues(APILoki, Concurrency)))
}
