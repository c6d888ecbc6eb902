package vtraces

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that a closed Store leaves no goroutine behind. The
// VictoriaMetrics libraries start goroutines of their own when their
// packages initialise (clocks, caches, log throttlers), which never end:
// they run before TestMain and are ignored, as is the one the metrics
// package starts for the first summary a partition registers.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/VictoriaMetrics/metrics.summariesSwapCron"),
	)
}
