package receive

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/collector/receive/receivetest"
)

func compress(t testing.TB, enc Encoding, b []byte) []byte {
	t.Helper()
	switch enc {
	case EncodingSnappy:
		return snappy.Encode(nil, b)
	case EncodingGzip:
		return receivetest.Gzip(t, b)
	case EncodingZstd:
		return receivetest.Zstd(t, b)
	}
	return b
}

func request(body []byte) *http.Request {
	return httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
}

func TestReadBodyRoundTrip(t *testing.T) {
	in, _ := newIntake(t, receivetest.Discard{}, nil)
	payload := bytes.Repeat([]byte("remote write payload "), 5000)
	for _, enc := range []Encoding{EncodingIdentity, EncodingSnappy, EncodingGzip, EncodingZstd} {
		t.Run(enc.String(), func(t *testing.T) {
			// Twice: the second read reuses pooled buffers and decoders.
			for range 2 {
				b, err := in.ReadBody(request(compress(t, enc, payload)), enc, ProtocolOTLPHTTP)
				require.NoError(t, err)
				require.Equal(t, payload, b.Bytes())
				b.Release()
			}
		})
	}
}

func TestReadBodyLimits(t *testing.T) {
	in, _ := newIntake(t, receivetest.Discard{}, func(c *Config, _ *Limits) {
		c.MaxRequestBytes = 4096
		c.MaxDecompressedBytes = 64 << 10
	})
	big := make([]byte, 1<<20) // zeros: compresses to well under 4 KiB with gzip and zstd
	for _, enc := range []Encoding{EncodingGzip, EncodingZstd} {
		t.Run(enc.String(), func(t *testing.T) {
			body := compress(t, enc, big)
			require.Less(t, len(body), 4096)
			_, err := in.ReadBody(request(body), enc, ProtocolOTLPHTTP)
			require.ErrorIs(t, err, ErrTooLarge)
			require.Equal(t, http.StatusRequestEntityTooLarge, HTTPStatus(err))
			require.ErrorContains(t, err, "agent.receive.max_decompressed_bytes")

			// Exactly at the limit is fine.
			b, err := in.ReadBody(request(compress(t, enc, big[:64<<10])), enc, ProtocolOTLPHTTP)
			require.NoError(t, err)
			require.Len(t, b.Bytes(), 64<<10)
			b.Release()
		})
	}

	// Wire limit, with and without Content-Length.
	_, err := in.ReadBody(request(make([]byte, 4097)), EncodingIdentity, ProtocolRemoteWriteV1)
	require.ErrorIs(t, err, ErrTooLarge)
	require.ErrorContains(t, err, "agent.receive.max_request_bytes")
	r := request(nil)
	r.Body = io.NopCloser(bytes.NewReader(make([]byte, 4097)))
	r.ContentLength = -1
	_, err = in.ReadBody(r, EncodingIdentity, ProtocolRemoteWriteV1)
	require.ErrorIs(t, err, ErrTooLarge)
	r.Body = io.NopCloser(bytes.NewReader(make([]byte, 4096)))
	b, err := in.ReadBody(r, EncodingIdentity, ProtocolRemoteWriteV1)
	require.NoError(t, err)
	require.Len(t, b.Bytes(), 4096)
	b.Release()
}

func TestSnappyBombNotAllocated(t *testing.T) {
	in, _ := newIntake(t, receivetest.Discard{}, nil)
	bomb := append(binary.AppendUvarint(nil, 0xfffffff0), 0, 'x')
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := in.ReadBody(request(bomb), EncodingSnappy, ProtocolRemoteWriteV2)
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, ErrTooLarge)
	require.ErrorContains(t, err, "declares 4294967280 bytes decompressed")
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20))
}

// A 10-byte zstd frame that declares a 64 MiB window would make the
// decoder allocate it at once; such windows are refused first.
func TestZstdWindowBomb(t *testing.T) {
	in, _ := newIntake(t, receivetest.Discard{}, nil)
	// Magic, no single segment, window 2^(10+16) = 64 MiB, one raw block "x".
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 16 << 3, 0x09, 0x00, 0x00, 'x'}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := in.ReadBody(request(frame), EncodingZstd, ProtocolOTLPHTTP)
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, ErrTooLarge)
	require.ErrorContains(t, err, "decoding window")
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20))

	// An 8 MiB window is what encoders use: taken.
	frame[5] = 13 << 3
	b, err := in.ReadBody(request(frame), EncodingZstd, ProtocolOTLPHTTP)
	require.NoError(t, err)
	require.Equal(t, "x", string(b.Bytes()))
	b.Release()
}

func TestReadBodyMalformed(t *testing.T) {
	in, _ := newIntake(t, receivetest.Discard{}, nil)
	for _, c := range []struct {
		enc  Encoding
		body []byte
	}{
		{EncodingSnappy, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{EncodingSnappy, append(binary.AppendUvarint(nil, 100), 0, 'x')}, // declares more than it holds
		{EncodingGzip, []byte("not gzip")},
		{EncodingGzip, compress(t, EncodingGzip, []byte("truncated body here"))[:15]},
		{EncodingZstd, []byte("not zstd")},
	} {
		_, err := in.ReadBody(request(c.body), c.enc, ProtocolOTLPHTTP)
		require.ErrorIs(t, err, ErrMalformedBody, c.enc.String())
		require.Equal(t, http.StatusBadRequest, HTTPStatus(err))
	}
}

func TestParseEncoding(t *testing.T) {
	for h, want := range map[string]Encoding{"": EncodingIdentity, "identity": EncodingIdentity, "GZIP": EncodingGzip, "x-gzip": EncodingGzip, " zstd ": EncodingZstd, "snappy": EncodingSnappy} {
		got, err := ParseEncoding(h)
		require.NoError(t, err, h)
		require.Equal(t, want, got, h)
	}
	for _, h := range []string{"br", "deflate", "gzip, zstd"} {
		_, err := ParseEncoding(h)
		require.ErrorIs(t, err, ErrUnsupportedEncoding, h)
		require.Equal(t, http.StatusUnsupportedMediaType, HTTPStatus(err))
	}
}
