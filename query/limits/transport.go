package limits

import (
	"io"
	"net/http"
)

// Transport wraps rt so that the response body of a request whose context
// carries a Budget charges it for every byte read: the fan-out's way of
// counting what it receives from aggregators. A read past the limit fails
// with the *Error.
func Transport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return transport{rt}
}

type transport struct{ rt http.RoundTripper }

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if b := FromContext(req.Context()); b != nil && b.maxBytes > 0 {
		resp.Body = &countingBody{ReadCloser: resp.Body, b: b}
	}
	return resp, nil
}

// Reader charges b for every byte read through r.
func Reader(r io.Reader, b *Budget) io.Reader {
	if b == nil || b.maxBytes <= 0 {
		return r
	}
	return &countingBody{ReadCloser: io.NopCloser(r), b: b}
}

type countingBody struct {
	io.ReadCloser
	b *Budget
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if n > 0 {
		if lerr := c.b.AddBytes(int64(n)); lerr != nil {
			return n, lerr
		}
	}
	return n, err
}
