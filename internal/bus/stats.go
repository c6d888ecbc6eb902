package bus

import (
	"context"
	"fmt"
)

// StreamStats is what a signal's stream holds and where it lives, as
// JetStream reports it: for status pages, not for hot paths.
type StreamStats struct {
	Signal    Signal
	Name      string
	Subjects  []string
	Messages  uint64
	Bytes     uint64
	FirstSeq  uint64
	LastSeq   uint64
	Consumers int
	Replicas  int
	// Leader is the server that leads the stream in a NATS cluster; that
	// server's name on a single server.
	Leader string
	// Err is why the stream could not be looked up; the other fields are
	// then zero but Signal and Name.
	Err error
}

// StreamStats reports the stream of every signal, in Signals order. A
// stream that cannot be looked up (not created yet, NATS unreachable) gets
// its error in StreamStats.Err; the others are still reported. Each look-up
// is one JetStream API request bounded by ctx and the API timeout.
func (c *Conn) StreamStats(ctx context.Context) []StreamStats {
	out := make([]StreamStats, 0, len(Signals))
	for _, s := range Signals {
		out = append(out, c.streamStats(ctx, s))
	}
	return out
}

func (c *Conn) streamStats(ctx context.Context, s Signal) StreamStats {
	st := StreamStats{Signal: s, Name: c.state(s).stream}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	stream, err := c.js.Stream(ctx, st.Name)
	if err != nil {
		st.Err = fmt.Errorf("stream %s: %w", st.Name, err)
		return st
	}
	// Stream fetched the info already; a second request would only be
	// fresher by a few microseconds.
	info := stream.CachedInfo()
	st.Subjects = append([]string(nil), info.Config.Subjects...)
	st.Messages, st.Bytes = info.State.Msgs, info.State.Bytes
	st.FirstSeq, st.LastSeq = info.State.FirstSeq, info.State.LastSeq
	st.Consumers = info.State.Consumers
	st.Replicas = max(info.Config.Replicas, 1)
	if info.Cluster != nil {
		st.Leader = info.Cluster.Leader
	}
	return st
}

// ConsumerStats is how far one durable consumer is behind.
type ConsumerStats struct {
	// Pending is the number of messages not delivered yet.
	Pending uint64
	// AckPending is the number delivered but not acknowledged yet.
	AckPending int
}

// Lag is what ConsumerLag reports: every message the consumer has not
// acknowledged.
func (s ConsumerStats) Lag() uint64 { return s.Pending + uint64(max(s.AckPending, 0)) }

// ConsumerStats reports the durable consumer of a signal: one JetStream
// API request, bounded by ctx.
func (c *Conn) ConsumerStats(ctx context.Context, signal Signal, durable string) (ConsumerStats, error) {
	st := c.state(signal)
	if st == nil {
		return ConsumerStats{}, fmt.Errorf("consumer stats: unknown signal %q", signal)
	}
	cons, err := c.js.Consumer(ctx, st.stream, durable)
	if err != nil {
		return ConsumerStats{}, fmt.Errorf("consumer %s/%s: %w", st.stream, durable, err)
	}
	info := cons.CachedInfo()
	return ConsumerStats{Pending: info.NumPending, AckPending: info.NumAckPending}, nil
}
