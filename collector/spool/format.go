package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// On-disk format.
//
// A segment file is a sequence of frames and nothing else:
//
//	magic   uint32  frameMagic
//	length  uint32  bytes of payload that follow the header
//	crc     uint32  CRC-32C of length (its 4 bytes) and payload
//	payload:
//	  seq     uint64  the record's sequence number, +1 per record, never reused
//	  samples uint32  what the record counts, reported if it is dropped
//	  data    []byte  the caller's record
//
// All integers are little-endian. The CRC covers the length so that a
// corrupted length cannot point at a plausible payload. The magic lets a
// reader find the next frame after a damaged one. Sequence numbers make
// confirmation independent of file offsets, and a gap in them counts the
// records lost to damage.
//
// The cursor file holds the first unconfirmed sequence number (uint64) and
// its CRC-32C (uint32).
const (
	frameMagic  uint32 = 0x314c5053 // "SPL1"
	headerSize         = 12
	metaSize           = 12
	frameExtra         = headerSize + metaSize
	maxFrameLen        = 1 << 30
	cursorSize         = 12
)

var (
	crcTable   = crc32.MakeTable(crc32.Castagnoli)
	magicBytes = binary.LittleEndian.AppendUint32(nil, frameMagic)

	errBadCursor = errors.New("bad cursor file")
)

// frame is a valid frame found in a segment.
type frame struct {
	off     int64 // of the frame in its segment
	size    int64 // of the whole frame
	seq     uint64
	samples int
}

// appendFrame appends the frame of one record to dst.
func appendFrame(dst []byte, seq uint64, samples int, data []byte) []byte {
	n := metaSize + len(data)
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, frameMagic)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	dst = binary.LittleEndian.AppendUint32(dst, 0) // crc, below
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(samples))
	dst = append(dst, data...)
	crc := crc32.Update(0, crcTable, dst[start+4:start+8])
	crc = crc32.Update(crc, crcTable, dst[start+headerSize:])
	binary.LittleEndian.PutUint32(dst[start+8:], crc)
	return dst
}

// parseHeader checks the fixed part of a frame (header and meta, frameExtra
// bytes) and returns the length of the record's data. remaining is how many
// bytes the segment holds from the frame on.
func parseHeader(h []byte, remaining int64) (int64, bool) {
	if len(h) < frameExtra || binary.LittleEndian.Uint32(h) != frameMagic {
		return 0, false
	}
	n := int64(binary.LittleEndian.Uint32(h[4:]))
	if n < metaSize || n > maxFrameLen || headerSize+n > remaining {
		return 0, false
	}
	return n - metaSize, true
}

// checkFrame verifies the CRC of a frame whose fixed part is h and whose
// record data is data, and returns the record's sequence number and sample
// count.
func checkFrame(h, data []byte) (seq uint64, samples int, ok bool) {
	crc := crc32.Update(0, crcTable, h[4:8])
	crc = crc32.Update(crc, crcTable, h[headerSize:frameExtra])
	crc = crc32.Update(crc, crcTable, data)
	if crc != binary.LittleEndian.Uint32(h[8:]) {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint64(h[headerSize:]), int(binary.LittleEndian.Uint32(h[headerSize+8:])), true
}

// parseFrame reads the frame at the start of b.
func parseFrame(b []byte) (frame, bool) {
	n, ok := parseHeader(b, int64(len(b)))
	if !ok {
		return frame{}, false
	}
	seq, samples, ok := checkFrame(b, b[frameExtra:frameExtra+n])
	if !ok {
		return frame{}, false
	}
	return frame{size: frameExtra + n, seq: seq, samples: samples}, true
}

// scanResult sums up one scan of a segment's bytes.
type scanResult struct {
	validEnd int64 // end of the last valid frame: what follows is a torn tail
	corrupt  int64 // bytes skipped between valid frames
}

// scan calls fn for every valid frame in buf, a segment's bytes, in order.
// A damaged region is skipped up to the next valid frame (found by its
// magic and CRC) and counted; anything after the last valid frame is left
// to the caller, which truncates it. scan never fails: bytes from disk are
// outside input, and at worst none of them is a frame.
func scan(buf []byte, fn func(frame)) scanResult {
	var res scanResult
	off := int64(0)
	for off < int64(len(buf)) {
		if f, ok := parseFrame(buf[off:]); ok {
			f.off = off
			fn(f)
			off += f.size
			res.validEnd = off
			continue
		}
		next := nextFrame(buf, off+1)
		if next < 0 {
			break
		}
		res.corrupt += next - off
		off = next
	}
	return res
}

// nextFrame returns the offset of the first valid frame at or after from,
// or -1.
func nextFrame(buf []byte, from int64) int64 {
	for from < int64(len(buf)) {
		i := bytes.Index(buf[from:], magicBytes)
		if i < 0 {
			return -1
		}
		at := from + int64(i)
		if _, ok := parseFrame(buf[at:]); ok {
			return at
		}
		from = at + 1
	}
	return -1
}

// encodeCursor appends the cursor file's content to dst.
func encodeCursor(dst []byte, seq uint64) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], crcTable))
}

func decodeCursor(b []byte) (uint64, error) {
	if len(b) != cursorSize || crc32.Checksum(b[:8], crcTable) != binary.LittleEndian.Uint32(b[8:]) {
		return 0, errBadCursor
	}
	return binary.LittleEndian.Uint64(b), nil
}
