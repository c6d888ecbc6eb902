package bus

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Dead letters: a message an aggregator cannot decode would fail the same way
// on every redelivery, so it is moved aside — published whole, with its
// original headers, to pharos.deadletter.<signal> in the PHAROS_DEADLETTER
// stream — and terminated, so its partition moves on. Operators can inspect
// or replay it with any NATS client.
const (
	// DeadLetterStream holds undecodable messages of every signal.
	DeadLetterStream = "PHAROS_DEADLETTER"
	// HeaderDeadLetterReason says why a message was set aside.
	HeaderDeadLetterReason = "Pharos-Dead-Letter-Reason"
	// HeaderOriginalSubject and HeaderOriginalSeq locate the message in
	// its original stream.
	HeaderOriginalSubject = "Pharos-Original-Subject"
	HeaderOriginalSeq     = "Pharos-Original-Seq"

	deadLetterPrefix = subjectPrefix + "deadletter."
	// maxReasonLen bounds the reason header: decode errors can quote input.
	maxReasonLen = 512
)

// DeadLetterSubject is where undecodable messages of a signal go.
func DeadLetterSubject(s Signal) string { return deadLetterPrefix + string(s) }

// deadLetterStreamConfig keeps dead letters for a week, bounded in bytes;
// unlike the ingest streams it discards the oldest when full, since these are
// diagnostics and must never block ingestion.
func (c *Conn) deadLetterStreamConfig() jetstream.StreamConfig {
	maxBytes := min(c.cfg.Stream.MaxBytes, 1<<30)
	return jetstream.StreamConfig{
		Name:        DeadLetterStream,
		Description: "Pharos messages that could not be decoded",
		Subjects:    []string{deadLetterPrefix + "*"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		MaxAge:      max(c.cfg.Stream.MaxAge, 7*24*time.Hour),
		MaxBytes:    maxBytes,
		Replicas:    c.cfg.Stream.Replicas,
	}
}

// DeadLetter moves d aside: it publishes a copy to the dead-letter stream
// (waiting for the PubAck) and then terminates d so it is never redelivered.
// If the copy cannot be stored, d is left unsettled and an error returned;
// the caller should Nak it so it is tried again rather than lost.
func (c *Conn) DeadLetter(ctx context.Context, d *Delivery, signal Signal, reason string) error {
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen]
	}
	msg := &nats.Msg{
		Subject: DeadLetterSubject(signal),
		Data:    d.Data,
		Header: nats.Header{
			HeaderTenant:           []string{d.Tenant},
			HeaderDeadLetterReason: []string{reason},
			HeaderOriginalSubject:  []string{d.Subject},
			HeaderOriginalSeq:      []string{strconv.FormatUint(d.StreamSeq, 10)},
		},
	}
	if d.Encoding != "" {
		msg.Header.Set(HeaderEncoding, d.Encoding)
	}
	if d.MsgID != "" {
		// Keeps a redelivered poison message from being stored twice.
		msg.Header.Set(HeaderMsgID, "dl-"+d.MsgID)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PublishTimeout)
	defer cancel()
	if _, err := c.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("dead-letter %s seq %d: %w", d.Subject, d.StreamSeq, err)
	}
	c.metrics.deadLetters.WithLabelValues(string(signal)).Inc()
	return d.Term()
}

// StreamState reports how many messages and bytes a stream holds.
func (c *Conn) StreamState(ctx context.Context, stream string) (msgs, bytes uint64, err error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	st, err := c.js.Stream(ctx, stream)
	if err != nil {
		return 0, 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("stream %s info: %w", stream, err)
	}
	return info.State.Msgs, info.State.Bytes, nil
}
