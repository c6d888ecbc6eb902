package rules

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"
)

const twoGroups = `groups:
  - name: g1
    rules:
      - record: one
        expr: vector(1)
  - name: g2
    rules:
      - record: two
        expr: vector(2)
`

func TestOwnershipPicksGroups(t *testing.T) {
	store := openStore(t)
	f := writeFile(t, t.TempDir(), "groups.yml", twoGroups)
	g1, g2 := GroupKey(f, "g1"), GroupKey(f, "g2")
	own := newOwner(g1)
	m, reg := startManager(t, testConfig(f), Deps{Queryable: store, Appendable: store, Owns: own.owns})

	count := func(name string) int {
		n := 0
		for _, vs := range series(t, store, name) {
			n += len(vs)
		}
		return n
	}

	// g1 is evaluated, g2 is not even loaded.
	poll(t, 10*time.Second, func() (bool, string) {
		n := count("one")
		return n >= 3, fmt.Sprintf("%d samples of one", n)
	})
	require.Zero(t, count("two"), "g2 is not owned: never evaluated")
	require.Equal(t, []string{"g1"}, groupNames(m))
	requireMetric(t, reg, "pharos_rules_owned_groups", 1)
	requireMetric(t, reg, "pharos_rules_groups", 2)

	// g2 moves here.
	own.set(g2, true)
	m.OwnershipChanged()
	poll(t, 10*time.Second, func() (bool, string) {
		n := count("two")
		return n >= 1, fmt.Sprintf("groups %v, %d samples of two", groupNames(m), n)
	})
	require.Equal(t, []string{"g1", "g2"}, groupNames(m))

	// g1 moves away, and before OwnershipChanged is applied it is
	// already no longer evaluated: ownership is asked before each
	// evaluation.
	own.set(g1, false)
	skipped := metricValue(t, reg, "pharos_rules_evaluations_skipped_total")
	poll(t, 10*time.Second, func() (bool, string) {
		s := metricValue(t, reg, "pharos_rules_evaluations_skipped_total")
		return s >= skipped+1, fmt.Sprintf("%v skipped", s)
	})
	before := count("one")
	poll(t, 10*time.Second, func() (bool, string) {
		s := metricValue(t, reg, "pharos_rules_evaluations_skipped_total")
		return s >= skipped+3, fmt.Sprintf("%v skipped", s)
	})
	require.Equal(t, before, count("one"), "a group no longer owned writes nothing")

	m.OwnershipChanged()
	poll(t, 10*time.Second, func() (bool, string) {
		names := groupNames(m)
		return len(names) == 1 && names[0] == "g2", fmt.Sprintf("groups %v", names)
	})
	requireMetric(t, reg, "pharos_rules_owned_groups", 1)
}

const forStateRules = `groups:
  - name: held
    rules:
      - alert: Held
        expr: test_metric > 10
        for: 4s
`

// TestForStateSurvivesHandover has a second Manager take a group over
// from the first, over the same store, after the first has fired an
// alert: by ownership (the second runs already and gains the group) or by
// restart (the first stops, the second starts). The second restores the
// alert's active time from the ALERTS_FOR_STATE series the first wrote and
// fires without waiting a whole `for` again.
func TestForStateSurvivesHandover(t *testing.T) {
	const hold = 4 * time.Second
	for _, tc := range []struct {
		name        string
		byOwnership bool
	}{
		{name: "ownership moves", byOwnership: true},
		{name: "restart"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := openStore(t)
			f := writeFile(t, t.TempDir(), "held.yml", forStateRules)
			key := GroupKey(f, "held")
			own1, own2 := newOwner(key), newOwner()
			first, firstReg := startManager(t, testConfig(f), Deps{Queryable: store, Appendable: store, Owns: own1.owns})
			var second *Manager
			if tc.byOwnership {
				second, _ = startManager(t, testConfig(f), Deps{Queryable: store, Appendable: store, Owns: own2.owns})
			}
			appendSample(t, store, labels.FromStrings("__name__", "test_metric", "instance", "a"), time.Now().Add(-time.Minute), 42)

			// Firing for a while, so that ALERTS_FOR_STATE records more
			// than the whole hold even with its whole-second precision.
			var fired *promrules.Alert
			poll(t, 20*time.Second, func() (bool, string) {
				fired = activeAlert(t, first)
				return fired != nil && fired.State == promrules.StateFiring && time.Since(fired.FiredAt) > 1500*time.Millisecond, describe(fired)
			})
			poll(t, 10*time.Second, func() (bool, string) {
				got := series(t, store, "ALERTS_FOR_STATE")
				return len(got) == 1, fmt.Sprintf("ALERTS_FOR_STATE: %v", got)
			})

			if tc.byOwnership {
				own1.set(key, false)
				first.OwnershipChanged()
				poll(t, 10*time.Second, func() (bool, string) {
					return len(first.Groups()) == 0, fmt.Sprintf("groups %v", groupNames(first))
				})
				// The first manager marks its last series stale two
				// intervals after letting go; those markers are dropped,
				// or they would hide the state from the second manager.
				poll(t, 10*time.Second, func() (bool, string) {
					n := metricValue(t, firstReg, "pharos_rules_unowned_samples_dropped_total")
					return n >= 2, fmt.Sprintf("%v dropped", n)
				})
			} else {
				stopManager(t, first)
			}

			started := time.Now()
			if tc.byOwnership {
				require.Empty(t, second.Groups())
				own2.set(key, true)
				second.OwnershipChanged()
			} else {
				second, _ = startManager(t, testConfig(f), Deps{Queryable: store, Appendable: store})
			}
			var again *promrules.Alert
			poll(t, 20*time.Second, func() (bool, string) {
				again = activeAlert(t, second)
				return again != nil && again.State == promrules.StateFiring, describe(again)
			})
			require.Equal(t, fired.ActiveAt.Unix(), again.ActiveAt.Unix(), "active time restored from ALERTS_FOR_STATE")
			require.Less(t, again.FiredAt.Sub(started), hold, "fired without waiting a whole `for` again")
		})
	}
}
