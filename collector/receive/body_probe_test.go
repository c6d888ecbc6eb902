package receive

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/collector/receive/receivetest"
)

// TestInflateProbe: a body that inflates past the probe but within the
// limit comes out whole (decompressed twice); one past the limit is
// refused having taken about the probe, not the limit.
func TestInflateProbe(t *testing.T) {
	in, _ := newIntake(t, receivetest.Discard{}, func(c *Config, _ *Limits) {
		c.MaxDecompressedBytes = 64 << 20
	})
	rng := rand.New(rand.NewPCG(1, 2))
	fits := make([]byte, 3*inflateProbe+12345) // over the probe, under the limit
	for i := range fits {
		fits[i] = byte('a' + rng.IntN(4)) // compressible, not trivially
	}
	bomb := make([]byte, 65<<20) // zeros, just over the limit
	for _, enc := range []Encoding{EncodingGzip, EncodingZstd} {
		t.Run(enc.String(), func(t *testing.T) {
			b, err := in.ReadBody(request(compress(t, enc, fits)), enc, ProtocolOTLPHTTP)
			require.NoError(t, err)
			require.True(t, bytes.Equal(fits, b.Bytes()))
			require.Equal(t, len(fits), len(b.Bytes()))
			b.Release()

			body := compress(t, enc, bomb)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err = in.ReadBody(request(body), enc, ProtocolOTLPHTTP)
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, ErrTooLarge)
			require.ErrorContains(t, err, "agent.receive.max_decompressed_bytes")
			// TotalAlloc counts the decoder's own window buffers too (zstd's
			// are 8 MiB): the bound is half the limit, against the 1.5× the
			// limit a growing buffer took before.
			require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(len(body)+32<<20), "allocated to refuse a body inflating past the limit")
		})
	}
}
