package receive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
)

// Errors of ReadBody; HTTPStatus maps them to status codes.
var (
	// ErrTooLarge: the body is, declares or inflates to more than a limit.
	ErrTooLarge = errors.New("request body too large")
	// ErrUnsupportedEncoding: a Content-Encoding the endpoint does not take.
	ErrUnsupportedEncoding = errors.New("unsupported content encoding")
	// ErrMalformedBody: the body does not decompress.
	ErrMalformedBody = errors.New("malformed request body")
	// ErrBodyTimeout: the sender did not deliver the body within
	// agent.receive.body_read_timeout.
	ErrBodyTimeout = errors.New("request body not received in time")
	// ErrBodyRead: the connection failed while reading the body.
	ErrBodyRead = errors.New("reading request body")
)

// HTTPStatus is the status code for an error of ReadBody.
func HTTPStatus(err error) int {
	switch {
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrUnsupportedEncoding):
		return http.StatusUnsupportedMediaType
	case errors.Is(err, ErrBodyTimeout):
		return http.StatusRequestTimeout
	default:
		return http.StatusBadRequest
	}
}

// Encoding is a request body's Content-Encoding.
type Encoding int

// The encodings ReadBody decompresses.
const (
	EncodingIdentity Encoding = iota
	// EncodingSnappy is the snappy block format (not framed), as remote
	// write uses it.
	EncodingSnappy
	EncodingGzip
	EncodingZstd
)

// String names the encoding as in Content-Encoding.
func (e Encoding) String() string {
	switch e {
	case EncodingSnappy:
		return "snappy"
	case EncodingGzip:
		return "gzip"
	case EncodingZstd:
		return "zstd"
	default:
		return "identity"
	}
}

// ParseEncoding reads a Content-Encoding header. Only one coding is
// accepted: stacked codings are a way to multiply decompression work.
func ParseEncoding(h string) (Encoding, error) {
	switch strings.ToLower(strings.TrimSpace(h)) {
	case "", "identity":
		return EncodingIdentity, nil
	case "snappy":
		return EncodingSnappy, nil
	case "gzip", "x-gzip":
		return EncodingGzip, nil
	case "zstd":
		return EncodingZstd, nil
	}
	return 0, fmt.Errorf("%w %q", ErrUnsupportedEncoding, h)
}

// maxZstdWindow caps the history a zstd frame may make the decoder
// allocate: a 10-byte frame declaring a 64 MiB window costs 64 MiB at
// once. 8 MiB is what RFC 8878 asks every decoder to support and what
// encoders use up to their strongest ordinary levels; frames wanting more
// ("--long", --ultra) are refused as too large.
const maxZstdWindow = 8 << 20

// Pooled buffers larger than this are dropped rather than kept, so one
// huge request does not pin its memory for the life of the process.
const maxPooledBuffer = 4 << 20

// Body is a request body read (and decompressed) into pooled memory. Its
// bytes are valid until Release; decoders may alias them (zero-copy
// strings) only while the request is handled.
type Body struct {
	in      *Intake
	wire    *[]byte
	decoded *[]byte // nil when the body was not compressed
}

// Bytes returns the (decompressed) body.
func (b *Body) Bytes() []byte {
	if b.decoded != nil {
		return *b.decoded
	}
	return *b.wire
}

// Release returns the buffers to the pool; Bytes must not be used after.
func (b *Body) Release() {
	b.in.putBuf(b.wire)
	if b.decoded != nil {
		b.in.putBuf(b.decoded)
	}
	b.wire, b.decoded = nil, nil
}

func (in *Intake) getBuf() *[]byte {
	if p, ok := in.bufs.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, 32<<10)
	return &b
}

func (in *Intake) putBuf(p *[]byte) {
	if p == nil || cap(*p) > maxPooledBuffer {
		return
	}
	*p = (*p)[:0]
	in.bufs.Put(p)
}

// ReadBody reads r's body, at most agent.receive.max_request_bytes of it,
// and decompresses it per enc into at most
// agent.receive.max_decompressed_bytes. A snappy body declaring a larger
// size is refused before anything is allocated for it; gzip and zstd are
// cut off as soon as they inflate past the limit. Errors wrap ErrTooLarge,
// ErrMalformedBody, ErrBodyTimeout or ErrBodyRead.
func (in *Intake) ReadBody(r *http.Request, enc Encoding, proto Protocol) (*Body, error) {
	limit := in.cfg.MaxRequestBytes
	if r.ContentLength > int64(limit) {
		return nil, fmt.Errorf("%w: the body is %d bytes, over the limit of %d (agent.receive.max_request_bytes)", ErrTooLarge, r.ContentLength, limit)
	}
	b := &Body{in: in, wire: in.getBuf()}
	var err error
	*b.wire, err = readLimited((*b.wire)[:0], r.Body, r.ContentLength, limit)
	if err != nil {
		b.Release()
		if errors.Is(err, ErrTooLarge) {
			return nil, fmt.Errorf("%w: the body is over the limit of %d bytes (agent.receive.max_request_bytes)", ErrTooLarge, limit)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("%w (agent.receive.body_read_timeout): %v", ErrBodyTimeout, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrBodyRead, err)
	}
	in.m.bodyBytes.WithLabelValues(string(proto), "wire").Observe(float64(len(*b.wire)))
	if enc == EncodingIdentity {
		return b, nil
	}
	b.decoded = in.getBuf()
	*b.decoded, err = in.decompress((*b.decoded)[:0], *b.wire, enc)
	if err != nil {
		b.Release()
		return nil, err
	}
	in.m.bodyBytes.WithLabelValues(string(proto), "decoded").Observe(float64(len(*b.decoded)))
	return b, nil
}

// readLimited appends all of r to dst, failing with ErrTooLarge once more
// than limit bytes arrive. A known length sizes the buffer once.
func readLimited(dst []byte, r io.Reader, length int64, limit int) ([]byte, error) {
	if length > 0 && cap(dst)-len(dst) < int(length)+1 {
		// +1 so the EOF read does not grow the buffer again.
		dst = append(make([]byte, 0, len(dst)+int(length)+1), dst...)
	}
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			if len(dst)-start > limit {
				return dst, ErrTooLarge
			}
			grow := max(cap(dst), 4096)
			grow = min(grow, limit+1-(len(dst)-start))
			if grow <= 0 {
				grow = 1
			}
			dst = slices.Grow(dst, grow)
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if len(dst)-start > limit {
			return dst, ErrTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

func (in *Intake) decompress(dst, src []byte, enc Encoding) ([]byte, error) {
	limit := in.cfg.MaxDecompressedBytes
	tooLarge := func() error {
		return fmt.Errorf("%w: the %s body inflates to more than %d bytes (agent.receive.max_decompressed_bytes)", ErrTooLarge, enc, limit)
	}
	switch enc {
	case EncodingSnappy:
		n, err := snappy.DecodedLen(src)
		if err != nil {
			return dst, fmt.Errorf("%w: snappy: %v", ErrMalformedBody, err)
		}
		if n > limit {
			return dst, fmt.Errorf("%w: the snappy body declares %d bytes decompressed, over the limit of %d (agent.receive.max_decompressed_bytes)", ErrTooLarge, n, limit)
		}
		if cap(dst) < n {
			dst = make([]byte, n)
		}
		out, err := snappy.Decode(dst[:cap(dst)], src)
		if err != nil {
			return dst, fmt.Errorf("%w: snappy: %v", ErrMalformedBody, err)
		}
		return out, nil
	case EncodingGzip:
		zr, _ := in.gzips.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(bytes.NewReader(src))
		} else {
			err = zr.Reset(bytes.NewReader(src))
		}
		if err != nil {
			return dst, fmt.Errorf("%w: gzip: %v", ErrMalformedBody, err)
		}
		defer in.gzips.Put(zr)
		reopen := func() (io.Reader, error) { return zr, zr.Reset(bytes.NewReader(src)) }
		out, err := inflate(dst, zr, reopen, limit)
		if errors.Is(err, ErrTooLarge) {
			return out, tooLarge()
		}
		if err != nil {
			return out, fmt.Errorf("%w: gzip: %v", ErrMalformedBody, err)
		}
		return out, nil
	case EncodingZstd:
		// Streamed through the same capped reader as gzip: DecodeAll
		// checks its limit only between frames and blocks, and grows its
		// output past it before it does.
		zr, _ := in.zstds.Get().(*zstd.Decoder)
		var err error
		if zr == nil {
			// Concurrency 1 decodes in the caller's goroutine: a pooled
			// decoder owns no goroutine, and the GC may drop it any time.
			zr, err = zstd.NewReader(nil,
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxWindow(uint64(min(max(limit, zstd.MinWindowSize), maxZstdWindow))),
			)
			if err != nil {
				return dst, fmt.Errorf("zstd decoder: %w", err)
			}
		}
		defer func() {
			_ = zr.Reset(nil) // drop the request's bytes before pooling
			in.zstds.Put(zr)
		}()
		// A frame declaring a larger size or window fails in Reset or
		// in the first read, before its memory is taken.
		out := dst
		if err = zr.Reset(bytes.NewReader(src)); err == nil {
			reopen := func() (io.Reader, error) { return zr, zr.Reset(bytes.NewReader(src)) }
			out, err = inflate(dst, zr, reopen, limit)
		}
		if errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return out, fmt.Errorf("%w: the zstd body asks for a decoding window over %d bytes", ErrTooLarge, min(limit, maxZstdWindow))
		}
		if errors.Is(err, ErrTooLarge) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
			return out, tooLarge()
		}
		if err != nil {
			return out, fmt.Errorf("%w: zstd: %v", ErrMalformedBody, err)
		}
		return out, nil
	}
	return dst, fmt.Errorf("%w %s", ErrUnsupportedEncoding, enc)
}

// inflateProbe is the most a compressed body may take in memory before its
// decompressed size is known. Past it, the rest is decompressed and
// counted without being kept, so a bomb is refused having cost this much
// (and no more than the limit in CPU); a body that fits the limit is then
// decompressed again, into a buffer of its exact size. Most bodies are
// smaller and are decompressed once.
const inflateProbe = maxPooledBuffer

// inflate appends what r decompresses to dst, at most limit bytes, else
// ErrTooLarge; reopen restarts the decompression from the beginning.
func inflate(dst []byte, r io.Reader, reopen func() (io.Reader, error), limit int) ([]byte, error) {
	probe := min(limit, inflateProbe)
	start := len(dst)
	out, err := readLimited(dst, r, 0, probe)
	if !errors.Is(err, ErrTooLarge) || probe == limit {
		return out, err
	}
	kept := len(out) - start
	rest, err := io.Copy(io.Discard, io.LimitReader(r, int64(limit-kept)+1))
	if err != nil {
		return out[:start], err
	}
	total := kept + int(rest)
	if total > limit {
		return out[:start], ErrTooLarge
	}
	if r, err = reopen(); err != nil {
		return out[:start], err
	}
	return readLimited(out[:start], r, int64(total), limit)
}
