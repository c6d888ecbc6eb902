package vtraces

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/storage/traces"
)

func TestTagNames(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	require.NoError(t, s.Append("", searchData(t, base)))
	searchable(s)
	ctx := context.Background()

	got, err := s.TagNames(ctx, traces.TagParams{})
	require.NoError(t, err)
	require.Equal(t, map[string][]string{
		"resource":  {"region", "service.name"},
		"span":      {"db.rows", "hit", "http.method", "http.status_code", "retries", "x", "y"},
		"intrinsic": intrinsicNames,
	}, got)

	got, err = s.TagNames(ctx, traces.TagParams{Scope: "span", Limit: 2})
	require.NoError(t, err)
	require.Equal(t, map[string][]string{"span": {"db.rows", "hit"}}, got)

	got, err = s.TagNames(ctx, traces.TagParams{Scope: "intrinsic"})
	require.NoError(t, err)
	require.Equal(t, map[string][]string{"intrinsic": intrinsicNames}, got)

	// Only trace 4's span started in this range.
	got, err = s.TagNames(ctx, traces.TagParams{Start: base.Add(30 * time.Second), End: base.Add(31 * time.Second)})
	require.NoError(t, err)
	require.Equal(t, map[string][]string{"resource": {"service.name"}, "span": {"retries"}, "intrinsic": intrinsicNames}, got)

	_, err = s.TagNames(ctx, traces.TagParams{Scope: "event"})
	require.ErrorIs(t, err, ErrBadCondition)
}

func TestTagValues(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	require.NoError(t, s.Append("", searchData(t, base)))
	searchable(s)
	ctx := context.Background()

	for tag, want := range map[string][]string{
		"span.http.method":      {"GET", "POST"},
		"span.http.status_code": {"200", "500", "503"},
		".region":               {"eu", "us"},
		".service.name":         {"cache", "db", "frontend", "payments", "worker"},
		"resource.service.name": {"cache", "db", "frontend", "payments", "worker"},
		"span.nothing":          {},
		"name":                  {"GET", "GET /api", "GET /health", "POST /api", "SELECT", "a-span", "b-span", "charge", "consume"},
		"status":                {"error", "ok", "unset"},
		"kind":                  {"client", "consumer", "internal", "server"},
		"rootName":              {"GET /api", "GET /health", "POST /api", "a-span"},
		"rootServiceName":       {"frontend"},
	} {
		t.Run(tag, func(t *testing.T) {
			got, err := s.TagValues(ctx, tag, traces.TagParams{})
			require.NoError(t, err)
			require.Equal(t, want, append([]string{}, got...))
		})
	}
	got, err := s.TagValues(ctx, "name", traces.TagParams{Limit: 3})
	require.NoError(t, err)
	require.Len(t, got, 3)
	got, err = s.TagValues(ctx, "name", traces.TagParams{Start: base.Add(20 * time.Second), End: base.Add(35 * time.Second)})
	require.NoError(t, err)
	require.Equal(t, []string{"GET /health", "consume"}, got)
	for _, bad := range []string{"duration", "traceDuration", "nope", "."} {
		_, err = s.TagValues(ctx, bad, traces.TagParams{})
		require.ErrorIs(t, err, ErrBadCondition, bad)
	}
}

func TestServicesAndOperations(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	require.NoError(t, s.Append("", searchData(t, base)))
	require.NoError(t, s.Append("", build(t, base, spec{trace: 9, id: 1, name: "anonymous"})))
	searchable(s)
	ctx := context.Background()

	services, err := s.Services(ctx, "", time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, []string{"cache", "db", "frontend", "payments", "worker"}, services)
	services, err = s.Services(ctx, "", base.Add(25*time.Second), base.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, []string{"frontend", "worker"}, services)

	ops, err := s.Operations(ctx, "", "frontend", time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, []traces.Operation{
		{Name: "GET /api", Kind: "server"}, {Name: "GET /health", Kind: "server"}, {Name: "POST /api", Kind: "server"},
		{Name: "a-span", Kind: "internal"}, {Name: "b-span", Kind: "internal"},
	}, ops)
	ops, err = s.Operations(ctx, "", "frontend", base.Add(15*time.Second), base.Add(25*time.Second))
	require.NoError(t, err)
	require.Equal(t, []traces.Operation{{Name: "GET /health", Kind: "server"}}, ops)
	ops, err = s.Operations(ctx, "", "", time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, []traces.Operation{{Name: "anonymous", Kind: "unspecified"}}, ops, "spans without a service")
	ops, err = s.Operations(ctx, "", `nobody"} | delete`, time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Empty(t, ops)
}
