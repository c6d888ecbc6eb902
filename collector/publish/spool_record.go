package publish

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
)

// A spooled batch is a whole bus.OutMsg plus what the publisher needs to
// account for it, so that a replay after a restart publishes exactly what
// the first attempt did, message ID included (JetStream then drops a
// replay of a batch it already stored):
//
//	version   byte     recordVersion
//	signal    string
//	partition uvarint
//	tenant    string
//	encoding  string
//	id        string
//	samples   uvarint
//	flushed   varint   unix nanoseconds of the flush, for the latency metric
//	data      []byte   the rest: the encoded batch
//
// A string is a uvarint length and its bytes.
const recordVersion = 1

// Limits that reject a damaged record rather than trusting its lengths.
const (
	maxRecordString    = 4096
	maxRecordPartition = 1 << 20
	maxRecordSamples   = 1 << 31
)

// errBadRecord reports spooled bytes that are not a batch record.
var errBadRecord = errors.New("bad spool record")

// spooled is a batch as read back from the spool.
type spooled struct {
	msg     bus.OutMsg
	samples int
	flushed int64
}

// appendRecord appends the spool record of bt to dst.
func appendRecord(dst []byte, bt *batch) []byte {
	dst = append(dst, recordVersion)
	dst = appendString(dst, string(bt.msg.Signal))
	dst = binary.AppendUvarint(dst, uint64(bt.msg.Partition))
	dst = appendString(dst, bt.msg.Tenant)
	dst = appendString(dst, bt.msg.Encoding)
	dst = appendString(dst, bt.msg.ID)
	dst = binary.AppendUvarint(dst, uint64(bt.samples))
	dst = binary.AppendVarint(dst, bt.flushed.UnixNano())
	return append(dst, bt.msg.Data...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// parseRecord decodes a spool record into r, overwriting every field.
// r.msg.Data aliases b. Bytes from disk are outside input: any b yields a
// record or an error wrapping errBadRecord, never a panic.
func parseRecord(b []byte, r *spooled) error {
	d := recordDecoder{b: b}
	if v := d.byte(); v != recordVersion {
		if d.err != nil {
			return d.err
		}
		return fmt.Errorf("%w: version %d", errBadRecord, v)
	}
	r.msg.Signal = bus.Signal(d.str(knownSignals))
	r.msg.Partition = int(d.uvarint(maxRecordPartition))
	r.msg.Tenant = d.str(knownTenants)
	r.msg.Encoding = d.str(knownEncodings)
	r.msg.ID = d.str(nil)
	r.samples = int(d.uvarint(maxRecordSamples))
	r.flushed = d.varint()
	if d.err != nil {
		return d.err
	}
	r.msg.Data = d.b
	if !r.msg.Signal.Valid() {
		return fmt.Errorf("%w: unknown signal %q", errBadRecord, r.msg.Signal)
	}
	return nil
}

// Values that most records carry, returned without allocating.
var (
	knownSignals   = []string{string(bus.SignalMetrics), string(bus.SignalLogs), string(bus.SignalTraces)}
	knownTenants   = []string{bus.DefaultTenant}
	knownEncodings = []string{codec.EncodingPRW2Snappy, codec.EncodingPRW2Zstd}
)

// recordDecoder reads a record's fields; the first error sticks and every
// later read returns a zero value.
type recordDecoder struct {
	b   []byte
	err error
}

func (d *recordDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errBadRecord, what)
	}
	d.b = nil
}

func (d *recordDecoder) byte() byte {
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *recordDecoder) uvarint(limit uint64) uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > limit {
		d.fail("bad number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recordDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recordDecoder) str(known []string) string {
	n := d.uvarint(maxRecordString)
	if d.err != nil {
		return ""
	}
	if uint64(len(d.b)) < n {
		d.fail("truncated string")
		return ""
	}
	b := d.b[:n]
	d.b = d.b[n:]
	for _, k := range known {
		if string(b) == k {
			return k
		}
	}
	return string(b)
}
