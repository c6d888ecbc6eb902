package promapi

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
)

func TestParseTime(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{in: "0", want: time.Unix(0, 0).UTC()},
		{in: "1700000000", want: time.UnixMilli(t0).UTC()},
		{in: "1700000000.781", want: time.UnixMilli(t0 + 781).UTC()},
		{in: "1700000000.7815", want: time.UnixMilli(t0 + 782).UTC()}, // Rounded to the millisecond.
		{in: "1700000000.9999", want: time.UnixMilli(t0 + 1000).UTC()},
		{in: "-1.5", want: time.UnixMilli(-1500).UTC()},
		{in: "1e9", want: time.Unix(1e9, 0).UTC()},
		{in: "2023-11-14T22:13:20Z", want: time.UnixMilli(t0).UTC()},
		{in: "2023-11-14T23:13:20.781+01:00", want: time.UnixMilli(t0 + 781)},
		{in: minTimeFormatted, want: MinTime},
		{in: maxTimeFormatted, want: MaxTime},
		{in: "", err: true},
		{in: "now", err: true},
		{in: "NaN", err: true},
		{in: "+Inf", err: true},
		{in: "1e300", err: true},
		{in: "2023-11-14", err: true},
	} {
		got, err := parseTime(tt.in)
		if tt.err {
			require.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.True(t, tt.want.Equal(got), "%s: got %s, want %s", tt.in, got, tt.want)
	}
}

func TestParseDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{in: "15", want: 15 * time.Second},
		{in: "0.5", want: 500 * time.Millisecond},
		{in: "-1", want: -time.Second},
		{in: "1m30s", want: 90 * time.Second},
		{in: "5m", want: 5 * time.Minute},
		{in: "1d", want: 24 * time.Hour},
		{in: "100ms", want: 100 * time.Millisecond},
		{in: "", err: true},
		{in: "fast", err: true},
		{in: "1ns", err: true}, // Prometheus durations stop at milliseconds.
		{in: "NaN", err: true},
		{in: "1e300", err: true},
		{in: "9223372036.854775807", err: true},
		{in: "-9223372037", err: true},
	} {
		got, err := parseDuration(tt.in)
		if tt.err {
			require.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}
}

func TestParseLimitAndMatchers(t *testing.T) {
	n, err := parseLimit("")
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = parseLimit("10")
	require.NoError(t, err)
	require.Equal(t, 10, n)
	_, err = parseLimit("-1")
	require.Error(t, err)
	_, err = parseLimit("ten")
	require.Error(t, err)
	require.Equal(t, 11, hintLimit(10))
	require.Equal(t, 0, hintLimit(0))
	require.Equal(t, math.MaxInt, hintLimit(math.MaxInt))

	p := parser.NewParser(parser.Options{})
	sets, err := parseMatchers(p, []string{`up`, `{job="a", instance=~".*"}`, `{"service.name"="x"}`})
	require.NoError(t, err)
	require.Len(t, sets, 3)
	for _, bad := range []string{`{job=~".*"}`, `{job=""}`, `{job!="a"}`, `up{`} {
		_, err := parseMatchers(p, []string{"up", bad})
		require.Error(t, err, bad)
	}
}

// checkParsedTime is the invariant FuzzParseTime checks: parsing never panics, and a
// successful parse is a time the storage's millisecond int64 can hold.
func checkParsedTime(t *testing.T, s string) {
	got, err := parseTime(s)
	if err != nil {
		return
	}
	require.False(t, got.Before(MinTime.Add(-time.Second)), "%q parsed to %s", s, got)
	require.False(t, got.After(MaxTime.Add(time.Second)), "%q parsed to %s", s, got)
	ms := timestamp.FromTime(got)
	require.Equal(t, ms < 0, got.Before(time.Unix(0, 0)), "%q: sign of %d", s, ms)
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"0", "1700000000.781", "-1.5", "1e9", "2023-11-14T22:13:20Z", "2023-11-14T23:13:20.781+01:00",
		minTimeFormatted, maxTimeFormatted, "NaN", "+Inf", "-Inf", "1e300", "-9223372036854775.808", "0x1p62", "9999-12-31T23:59:59.999999999Z", ""} {
		f.Add(s)
	}
	f.Fuzz(checkParsedTime)
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"15", "0.5", "-1", "1m30s", "1d", "1y2w3d4h5m6s7ms", "NaN", "1e300", "9223372036.854775807", "-9223372036.854775808", "0x1p40", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDuration(s)
		if err == nil && d < 0 {
			// Prometheus duration strings are never negative: only float seconds can be.
			_, ferr := strconv.ParseFloat(s, 64)
			require.NoError(t, ferr, "%q parsed to negative %s", s, d)
		}
	})
}
