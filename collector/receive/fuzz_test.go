package receive

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/collector/receive/receivetest"
)

func bodySeeds(t testing.TB) [][]byte {
	payload := bytes.Repeat([]byte("seed payload "), 100)
	return [][]byte{
		compress(t, EncodingSnappy, payload),
		compress(t, EncodingGzip, payload),
		compress(t, EncodingZstd, payload),
		compress(t, EncodingZstd, make([]byte, 1<<20)),
		{0x28, 0xb5, 0x2f, 0xfd, 0x00, 16 << 3, 0x09, 0x00, 0x00, 'x'},
		{0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 'x'},
	}
}

// FuzzReadBody decompresses any body in every encoding with small limits:
// no panic, and never more than the limit.
func FuzzReadBody(f *testing.F) {
	for _, s := range bodySeeds(f) {
		for enc := range 4 {
			f.Add(s, uint8(enc))
		}
	}
	in, _ := newIntake(f, receivetest.Discard{}, func(c *Config, _ *Limits) {
		c.MaxRequestBytes = 64 << 10
		c.MaxDecompressedBytes = 256 << 10
	})
	f.Fuzz(func(t *testing.T, data []byte, enc uint8) {
		b, err := in.ReadBody(request(data), Encoding(enc%4), ProtocolOTLPHTTP)
		if err != nil {
			code := HTTPStatus(err)
			require.Contains(t, []int{400, 413, 415}, code, err.Error())
			return
		}
		require.LessOrEqual(t, len(b.Bytes()), 256<<10)
		b.Release()
	})
}
