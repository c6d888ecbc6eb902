package promapi

import (
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
)

const (
	// flushThreshold is how much encoded JSON is buffered before it is written out. Large
	// matrices are streamed in chunks of about this size instead of being held whole.
	flushThreshold = 64 << 10

	// maxPooledBuffer keeps one oversized response from pinning its buffer in the pool.
	maxPooledBuffer = 1 << 20

	// minGzipSize is where compression starts to pay: below about one TCP segment it only
	// costs CPU.
	minGzipSize = 1400
)

// encoder is a pooled JSON buffer that flushes to an http.ResponseWriter as it fills, so a
// response of any size needs O(flushThreshold) memory. The choice between gzip and identity
// is made at the first flush, when the size is either known (a small, complete response) or
// known to be large.
type encoder struct {
	buf []byte

	w       http.ResponseWriter
	gzipOK  bool // the client accepts gzip
	started bool // headers are written
	gz      *gzip.Writer
	err     error // the first write error; later writes are skipped
}

var encoderPool = sync.Pool{New: func() any { return &encoder{buf: make([]byte, 0, flushThreshold+flushThreshold/4)} }}

var gzipPool = sync.Pool{New: func() any {
	// BestSpeed: encoding large matrices is CPU-bound already, and level 1 still shrinks
	// these highly repetitive payloads by an order of magnitude.
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return w
}}

func getEncoder(w http.ResponseWriter, r *http.Request) *encoder {
	e := encoderPool.Get().(*encoder)
	e.buf = e.buf[:0]
	e.w = w
	e.gzipOK = r != nil && acceptsGzip(r.Header.Get("Accept-Encoding"))
	return e
}

func putEncoder(e *encoder) {
	if e.gz != nil {
		e.gz.Reset(nil)
		gzipPool.Put(e.gz)
	}
	buf := e.buf
	*e = encoder{}
	if cap(buf) <= maxPooledBuffer {
		e.buf = buf[:0]
		encoderPool.Put(e)
	}
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip. q=0 means "not
// acceptable", which RFC 9110 requires us to honour.
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		name, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		params = strings.ReplaceAll(params, " ", "")
		if q, ok := strings.CutPrefix(params, "q="); ok {
			if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
				return false
			}
		}
		return true
	}
	return false
}

// maybeFlush writes the buffer out once it is large; call it between items.
func (e *encoder) maybeFlush() {
	if len(e.buf) >= flushThreshold {
		e.flush(false)
	}
}

// failed reports whether the client is gone, so that encoding can stop early.
func (e *encoder) failed() bool { return e.err != nil }

// flush writes the buffered bytes. final is true for the last call, which lets a small
// response go out uncompressed and with a Content-Length.
func (e *encoder) flush(final bool) {
	if e.err != nil {
		e.buf = e.buf[:0]
		return
	}
	if !e.started {
		e.start(final)
	}
	if len(e.buf) > 0 {
		if e.gz != nil {
			_, e.err = e.gz.Write(e.buf)
		} else {
			_, e.err = e.w.Write(e.buf)
		}
	}
	e.buf = e.buf[:0]
	if final && e.gz != nil && e.err == nil {
		e.err = e.gz.Close()
	}
}

func (e *encoder) start(final bool) {
	e.started = true
	h := e.w.Header()
	h.Set("Content-Type", "application/json")
	h.Add("Vary", "Accept-Encoding")
	if e.gzipOK && (!final || len(e.buf) >= minGzipSize) {
		h.Set("Content-Encoding", "gzip")
		h.Del("Content-Length")
		e.gz = gzipPool.Get().(*gzip.Writer)
		e.gz.Reset(e.w)
	} else if final {
		h.Set("Content-Length", strconv.Itoa(len(e.buf)))
	}
	e.w.WriteHeader(http.StatusOK)
}
