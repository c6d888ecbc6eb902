package notify

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// ErrBlockedAddress is returned when a receiver resolves to an address
// that -notify.allow-private-addresses does not allow.
var ErrBlockedAddress = errors.New("address not allowed")

const (
	userAgent = "Pharos-Notify"
	// maxErrorBody is how much of a failed response is kept in the error.
	maxErrorBody = 512
	// maxDrain is how much of a response is read so that its connection
	// can be reused; a longer body closes the connection instead.
	maxDrain = 64 << 10
)

// sharedAddressSpace is 100.64.0.0/10 (RFC 6598, carrier-grade NAT), where
// some clouds put metadata services; netip has no predicate for it.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// blockedAddr reports whether ip is internal: loopback, private, link-local
// (cloud metadata services live at 169.254.169.254), unspecified,
// multicast or shared address space.
func blockedAddr(ip netip.Addr) bool {
	ip = ip.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified() || sharedAddressSpace.Contains(ip)
}

// refuseInternal is a net.Dialer.Control: it runs for each address the
// dialer is about to connect to, after DNS resolution, so a name that
// resolves (or is re-bound) to an internal address is refused too.
func refuseInternal(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrBlockedAddress, address)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %q is not an IP address", ErrBlockedAddress, host)
	}
	if blockedAddr(ip) {
		return fmt.Errorf("%w: %s is a private, loopback or link-local address (see -notify.allow-private-addresses)", ErrBlockedAddress, ip)
	}
	return nil
}

// newHTTPClient returns the client of all receivers. It follows no
// redirects (a redirect could lead past the address check, and a 3xx is a
// misconfigured URL anyway) and ignores proxy settings (the proxy, not the
// receiver, would be the address checked). Timeouts come from each
// request's context.
func newHTTPClient(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		dialer.Control = refuseInternal
	}
	return &http.Client{
		Transport: &http.Transport{
			DialContext:           dialer.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// permanentError marks an error that retrying will not fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// statusError is a response other than 2xx.
type statusError struct {
	code       int
	body       string
	retryAfter time.Duration // from Retry-After on 429 and 503
}

func (e *statusError) Error() string {
	// Alertmanager's wording, so that operators recognise it.
	if e.body == "" {
		return fmt.Sprintf("unexpected status code %d", e.code)
	}
	return fmt.Sprintf("unexpected status code %d: %s", e.code, e.body)
}

// webhook posts payloads to one URL.
type webhook struct {
	url     string
	auth    string // Authorization header, or ""
	secret  []byte // HMAC key, or nil
	timeout time.Duration
	client  *http.Client
	now     func() time.Time
	// observe counts a request by status code, "error" without a response.
	observe func(code string)
}

// newWebhook builds the webhook of a validated receiver.
func newWebhook(rc ReceiverConfig, defaultTimeout time.Duration, client *http.Client, observe func(string)) *webhook {
	w := &webhook{
		url:     rc.URL,
		client:  client,
		now:     time.Now,
		observe: observe,
	}
	w.timeout, _ = parseDuration(rc.Timeout, false)
	if w.timeout == 0 {
		w.timeout = defaultTimeout
	}
	switch {
	case rc.BearerToken != "":
		w.auth = "Bearer " + string(rc.BearerToken)
	case rc.BasicAuth != nil:
		w.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(rc.BasicAuth.Username+":"+string(rc.BasicAuth.Password)))
	}
	if rc.HMACSecret != "" {
		w.secret = []byte(rc.HMACSecret)
	}
	return w
}

// post makes one request. Its errors never include the URL, which often
// holds a token; they are permanentError when retrying cannot help, and
// wrap context.Canceled when ctx was cancelled.
func (w *webhook) post(ctx context.Context, body []byte) error {
	rctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return permanentError{fmt.Errorf("build request: %w", unwrapURLError(err))}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if w.auth != "" {
		req.Header.Set("Authorization", w.auth)
	}
	if w.secret != nil {
		ts := strconv.FormatInt(w.now().Unix(), 10)
		req.Header.Set(TimestampHeader, ts)
		req.Header.Set(SignatureHeader, Signature(w.secret, ts, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		w.observe("error")
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("request abandoned: %w", context.Cause(ctx))
		case rctx.Err() != nil:
			return fmt.Errorf("no response within %s: %w", w.timeout, rctx.Err())
		case errors.Is(err, ErrBlockedAddress):
			return permanentError{unwrapURLError(err)}
		}
		return unwrapURLError(err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		_ = resp.Body.Close()
	}()
	w.observe(strconv.Itoa(resp.StatusCode))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	se := &statusError{code: resp.StatusCode, body: readErrorBody(resp.Body)}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode/100 == 5:
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			se.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), w.now())
		}
		return se
	case resp.StatusCode/100 == 3:
		se.body = "redirect to " + redactLocation(resp.Header.Get("Location")) + " not followed"
		return permanentError{se}
	default:
		return permanentError{se}
	}
}

// unwrapURLError drops url.Error's "Post \"<url>\":" prefix, which would
// put the URL, and any token in it, into logs and the failure list.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redactLocation keeps the scheme and host of a redirect target.
func redactLocation(loc string) string {
	u, err := url.Parse(loc)
	if err != nil || u.Host == "" {
		return "another location"
	}
	return u.Scheme + "://" + u.Host
}

func readErrorBody(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, maxErrorBody))
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), string(utf8.RuneError)))
	return strings.Map(func(r rune) rune {
		if r < ' ' {
			return ' ' // one log line per error
		}
		return r
	}, s)
}

// parseRetryAfter reads Retry-After as seconds or as an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(min(s, 3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), time.Hour)
	}
	return 0
}

// backoff returns the wait before retry number attempt (1 for the first
// retry): doubling from minB, capped at maxB, with the upper half random so
// that retries of many groups after one outage spread out.
func backoff(attempt int, minB, maxB time.Duration) time.Duration {
	d := maxB
	if shift := attempt - 1; shift < 32 {
		if b := minB << shift; b > 0 && b < maxB {
			d = b
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
