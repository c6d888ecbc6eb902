package app

import (
	"github.com/grafana/dskit/services"

	"github.com/pharos-obs/pharos/aggregator"
	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/internal/memlimit"
)

// modMemLimit is the memory limiter, a dependency of the receivers and
// the aggregator's consumers: it starts before them and stops after.
const modMemLimit = "memory-limiter"

// memState is the process's memory limiter (nil before its module is
// initialised, and in processes that neither receive nor consume).
type memState struct {
	memLimiter *memlimit.Limiter
}

func (a *App) initMemLimiter() (services.Service, error) {
	l, err := memlimit.New(a.cfg.Memory, a.logger.With("component", "memory-limiter"), a.reg)
	if err != nil {
		return nil, err
	}
	a.memLimiter = l
	return l, nil
}

// receiveGate is the memory gate of the push receivers; nil (no gate)
// when the limiter is off.
func (a *App) receiveGate() receive.MemoryGate {
	if a.memLimiter == nil || !a.memLimiter.Enabled() {
		return nil
	}
	return a.memLimiter
}

// aggregatorGate is the memory gate of the aggregator's consumers; nil
// (no gate) when the limiter is off.
func (a *App) aggregatorGate() aggregator.MemoryGate {
	if a.memLimiter == nil || !a.memLimiter.Enabled() {
		return nil
	}
	return a.memLimiter
}
