package codec

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// TestDecompressBombs: batches that inflate far past the limit are refused
// having taken about the limit, whether or not they declare their size.
func TestDecompressBombs(t *testing.T) {
	const limit = 1 << 20
	zeros := make([]byte, 4<<20)

	// A streamed frame declares no content size.
	var streamed bytes.Buffer
	zw, err := zstd.NewWriter(&streamed)
	require.NoError(t, err)
	for range 64 { // 256 MiB
		_, err = zw.Write(zeros)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	enc, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	frame := enc.EncodeAll(zeros[:limit/2], nil)
	frames := bytes.Repeat(frame, 512) // 256 MiB in frames that each declare 512 KiB

	snappyForged := []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x00} // declares 4 GiB − 1
	for _, c := range []struct {
		name string
		comp Compression
		src  []byte
	}{
		{"zstd streamed", CompressionZstd, streamed.Bytes()},
		{"zstd frames", CompressionZstd, frames},
		{"zstd declared", CompressionZstd, enc.EncodeAll(zeros, nil)},
		{"snappy declared", CompressionSnappy, s2.EncodeSnappy(nil, zeros)},
		{"snappy forged", CompressionSnappy, snappyForged},
	} {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := decompress(c.comp, nil, c.src, limit)
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, ErrTooLarge)
			require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20), "allocated while refusing")
		})
	}
}
