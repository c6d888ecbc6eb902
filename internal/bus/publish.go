package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	// ErrStreamFull reports a publish refused because the stream, or the
	// JetStream storage behind it, is at its limits. It is retryable later
	// (after consumers catch up or old data ages out): agents spool.
	ErrStreamFull = errors.New("stream full")
	// ErrMessageTooLarge reports a message above the server's maximum
	// payload. It is permanent for that message: split the batch.
	ErrMessageTooLarge = errors.New("message too large")
	// ErrNotConnected reports a publish attempted while the connection is
	// down. Publish fails fast instead of waiting out the timeout, so the
	// caller can spool at once.
	ErrNotConnected = errors.New("not connected to nats")
)

// OutMsg is one message to publish. Publish does not retain it or its Data
// after returning.
type OutMsg struct {
	// Signal selects the stream.
	Signal Signal
	// Partition selects the subject, 0 <= Partition < Conn.Partitions().
	Partition int
	// Tenant is sent as Pharos-Tenant; empty means DefaultTenant.
	Tenant string
	// Encoding is sent as Pharos-Encoding (omitted when empty).
	Encoding string
	// ID is sent as Nats-Msg-Id so a retried publish is stored once
	// (omitted when empty, which disables de-duplication).
	ID string
	// Data is the payload.
	Data []byte
}

// pubMsg is a reusable outgoing message. Its header map holds the three
// one-element value slices below, so setting a header is a store into an
// existing slice, not a new map entry and slice per publish.
type pubMsg struct {
	msg      nats.Msg
	tenant   []string
	encoding []string
	id       []string
}

func newPubMsg() *pubMsg {
	p := &pubMsg{
		tenant:   make([]string, 1),
		encoding: make([]string, 1),
		id:       make([]string, 1),
	}
	p.msg.Header = nats.Header{HeaderTenant: p.tenant}
	return p
}

func (p *pubMsg) set(subject string, m *OutMsg) {
	p.msg.Subject = subject
	p.msg.Data = m.Data
	p.tenant[0] = m.Tenant
	if m.Tenant == "" {
		p.tenant[0] = DefaultTenant
	}
	setHeader(p.msg.Header, HeaderEncoding, p.encoding, m.Encoding)
	setHeader(p.msg.Header, HeaderMsgID, p.id, m.ID)
}

// reset drops every reference to the caller's data before pooling.
func (p *pubMsg) reset() {
	p.msg.Data = nil
	p.msg.Subject = ""
	p.tenant[0], p.encoding[0], p.id[0] = "", "", ""
}

func setHeader(h nats.Header, key string, slot []string, v string) {
	if v == "" {
		delete(h, key)
		return
	}
	slot[0] = v
	h[key] = slot
}

// Publish publishes m to Subject(m.Signal, m.Partition) and returns once
// JetStream has acknowledged storing it, or with an error. It waits at most
// the configured publish timeout (and no longer than ctx allows). A PubAck
// that reports a duplicate ID counts as success: the message is stored.
//
// Errors wrap ErrStreamFull, ErrMessageTooLarge or ErrNotConnected where
// they apply, and context.DeadlineExceeded on timeout. Publish is safe for
// concurrent use; throughput comes from concurrent callers, each waiting
// for its own PubAck.
func (c *Conn) Publish(ctx context.Context, m *OutMsg) error {
	st := c.state(m.Signal)
	if st == nil {
		return fmt.Errorf("publish: unknown signal %q", m.Signal)
	}
	if m.Partition < 0 || m.Partition >= len(st.subjects) {
		return fmt.Errorf("publish %s: partition %d out of range [0, %d)", m.Signal, m.Partition, len(st.subjects))
	}
	subject := st.subjects[m.Partition]
	if !c.nc.IsConnected() {
		st.m.errOther.Inc()
		return fmt.Errorf("publish to %s: %w", subject, ErrNotConnected)
	}
	if !st.ensured.Load() {
		// Transient like a lost connection: callers spool or answer 503,
		// and try again once EnsureStreams has made the consumers.
		st.m.errOther.Inc()
		return fmt.Errorf("publish to %s: %w: the stream's consumers are not ensured yet", subject, ErrNotConnected)
	}
	if timeout := c.cfg.PublishTimeout; timeout > 0 {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > timeout {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
	}

	pm := c.pubPool.Get().(*pubMsg)
	pm.set(subject, m)
	start := time.Now()
	// The client serialises the message before sending and keeps no
	// reference to it afterwards, so pm can be reused once this returns.
	ack, err := c.js.PublishMsg(ctx, &pm.msg)
	elapsed := time.Since(start)
	pm.reset()
	c.pubPool.Put(pm)

	if err != nil {
		sentinel, reason := classifyPublishError(err)
		st.m.publishError(reason)
		if sentinel != nil {
			return fmt.Errorf("publish to %s: %w: %w", subject, sentinel, err)
		}
		return fmt.Errorf("publish to %s: %w", subject, err)
	}
	st.m.publishDuration.Observe(elapsed.Seconds())
	if ack.Duplicate {
		st.m.publishDuplicates.Inc()
		return nil
	}
	st.m.publishedMessages.Inc()
	st.m.publishedBytes.Add(float64(len(m.Data)))
	return nil
}

// classifyPublishError maps a publish failure to the sentinel callers test
// with errors.Is, and to the metric reason.
func classifyPublishError(err error) (error, string) {
	if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok {
		switch apiErr.ErrorCode {
		case errCodeAccountResourcesExceeded, errCodeInsufficientResources, errCodeStorageResourcesExceeded:
			return ErrStreamFull, reasonStreamFull
		case jetstream.JSErrCodeStreamMessageExceedsMaximum:
			return ErrMessageTooLarge, reasonOther
		case errCodeStreamStoreFailed:
			// One code covers every store failure; the description is the
			// server's error text ("maximum bytes exceeded", "maximum
			// messages exceeded", "message too large", or an I/O error).
			switch d := apiErr.Description; {
			case strings.Contains(d, "too large"):
				return ErrMessageTooLarge, reasonOther
			case strings.HasPrefix(d, "maximum") && strings.HasSuffix(d, "exceeded"):
				return ErrStreamFull, reasonStreamFull
			}
		}
		return nil, reasonOther
	}
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return ErrMessageTooLarge, reasonOther
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return nil, reasonTimeout
	}
	return nil, reasonOther
}
