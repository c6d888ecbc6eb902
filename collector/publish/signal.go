package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
)

// signalPublisher is what the log and trace publishers share: the bus
// they publish to, the compression of their messages, the message IDs of
// their calls, and publishing one call's messages at once.
type signalPublisher struct {
	signal      bus.Signal
	partitions  int
	publish     PublishFunc
	comp        codec.Compression
	concurrency int
	idPrefix    string
	logger      *slog.Logger

	mu  sync.Mutex // seq (and what the publisher adds under it)
	seq uint64
}

func newSignalPublisher(cfg Config, signal bus.Signal, partitions int, agentID string, publish PublishFunc, logger *slog.Logger) (*signalPublisher, error) {
	comp, err := codec.ParseCompression(cfg.Compression)
	if err != nil {
		return nil, err
	}
	if partitions < 1 {
		return nil, fmt.Errorf("partitions must be at least 1, got %d", partitions)
	}
	return &signalPublisher{
		signal:      signal,
		partitions:  partitions,
		publish:     publish,
		comp:        comp,
		concurrency: max(cfg.Concurrency, 1),
		// A per-start nonce keeps IDs unique across restarts of one agent.
		idPrefix: agentID + "-" + string(signal) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-",
		logger:   logger,
	}, nil
}

// nextSeq numbers a new call.
func (s *signalPublisher) nextSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq
}

// publishParts publishes the n messages of call seq, up to s.concurrency at
// once, and waits for all. Message i has the ID <prefix><seq>.<i>, the same
// for the same input, so JetStream drops what a retried call already
// stored. msg returns message i (partition, encoding and data; the rest is
// filled in); acked and tooLarge are as for publishEach.
func (s *signalPublisher) publishParts(ctx context.Context, tenant string, seq uint64, n int,
	msg func(i int) bus.OutMsg, acked func(i int), tooLarge func(i int, err error) error,
) error {
	base := s.idPrefix + strconv.FormatUint(seq, 10) + "."
	return s.publishEach(ctx, n, func(i int) bus.OutMsg {
		m := msg(i)
		m.Tenant, m.ID = tenant, base+strconv.Itoa(i)
		return m
	}, acked, tooLarge)
}

// publishEach publishes the n messages msg returns (the signal is filled
// in), up to s.concurrency at once, and waits for all. acked accounts for
// message i once JetStream has it; tooLarge turns the bus's refusal of
// message i for its size into the signal's error (data that can never be
// accepted; nil when the caller has dealt with it). The errors of all are
// joined.
func (s *signalPublisher) publishEach(ctx context.Context, n int,
	msg func(i int) bus.OutMsg, acked func(i int), tooLarge func(i int, err error) error,
) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, s.concurrency)
	)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			m := msg(i)
			m.Signal = s.signal
			err := s.publish(ctx, &m)
			if err == nil {
				acked(i)
				return
			}
			if errors.Is(err, bus.ErrMessageTooLarge) {
				if err = tooLarge(i, err); err == nil {
					return
				}
			}
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
