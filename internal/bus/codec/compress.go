package codec

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Compression names a block compression for encoded batches.
type Compression string

// Supported compressions.
const (
	CompressionSnappy Compression = "snappy"
	CompressionZstd   Compression = "zstd"
)

// ErrTooLarge reports a batch whose decompressed size exceeds the cap.
var ErrTooLarge = errors.New("decompressed batch exceeds size limit")

// ParseCompression validates a configured compression name.
func ParseCompression(s string) (Compression, error) {
	switch Compression(s) {
	case CompressionSnappy, CompressionZstd:
		return Compression(s), nil
	}
	return "", fmt.Errorf("unknown compression %q (want snappy or zstd)", s)
}

// The zstd coder objects are expensive to build and safe for concurrent
// EncodeAll/DecodeAll, so one of each serves the process.
var (
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
		if err != nil {
			panic(err) // only invalid options fail, and these are constant
		}
		return enc
	})
	// zstdDecoders holds one decoder per decompressed-size limit (a
	// process has one or two): the limit is the decoder's maximum memory,
	// so a frame without a declared size stops inflating just past it
	// instead of at a process-wide cap.
	zstdDecoders sync.Map // int → *zstd.Decoder
)

func zstdDecoder(limit int) *zstd.Decoder {
	if d, ok := zstdDecoders.Load(limit); ok {
		return d.(*zstd.Decoder)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(uint64(max(limit, 1))),
		zstd.WithDecoderMaxWindow(uint64(min(max(limit, zstd.MinWindowSize), zstd.MaxWindowSize))))
	if err != nil {
		panic(err) // only invalid options fail, and these are in range
	}
	d, _ := zstdDecoders.LoadOrStore(limit, dec)
	return d.(*zstd.Decoder)
}

func compress(c Compression, dst, src []byte) ([]byte, error) {
	if c == CompressionZstd {
		return zstdEncoder().EncodeAll(src, dst), nil
	}
	n := s2.MaxEncodedLen(len(src))
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	return s2.EncodeSnappy(dst[:n], src), nil
}

// decompress appends the decompressed src to dst, refusing output larger
// than limit before allocating it: snappy carries its length up front, and
// zstd frames are checked against their declared content size and decoded
// with a bounded window.
func decompress(c Compression, dst, src []byte, limit int) ([]byte, error) {
	switch c {
	case CompressionSnappy:
		n, err := s2.DecodedLen(src)
		if err != nil {
			return dst, fmt.Errorf("snappy: %w", err)
		}
		if n > limit {
			return dst, fmt.Errorf("%w: %d > %d bytes", ErrTooLarge, n, limit)
		}
		if cap(dst) < n {
			dst = make([]byte, n)
		}
		out, err := s2.Decode(dst[:n], src)
		if err != nil {
			return dst, fmt.Errorf("snappy: %w", err)
		}
		return out, nil
	case CompressionZstd:
		var h zstd.Header
		if err := h.Decode(src); err != nil {
			return dst, fmt.Errorf("zstd: %w", err)
		}
		if h.HasFCS && h.FrameContentSize > uint64(limit) {
			return dst, fmt.Errorf("%w: %d > %d bytes", ErrTooLarge, h.FrameContentSize, limit)
		}
		out, err := zstdDecoder(limit).DecodeAll(src, dst)
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return dst, fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit)
		}
		if err != nil {
			return dst, fmt.Errorf("zstd: %w", err)
		}
		if len(out) > limit {
			return dst, fmt.Errorf("%w: %d > %d bytes", ErrTooLarge, len(out), limit)
		}
		return out, nil
	}
	return dst, fmt.Errorf("%w: compression %q", ErrUnknownEncoding, c)
}
