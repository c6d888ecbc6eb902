package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// pushSummary is what push prints to stdout.
type pushSummary struct {
	URL         string  `json:"url"`
	Files       int     `json:"files"`
	Lines       int64   `json:"lines"`
	Bytes       int64   `json:"bytes"` // line bytes read, newlines included
	Requests    int64   `json:"requests"`
	BodyBytes   int64   `json:"body_bytes"` // snappy-compressed request bodies sent
	Retries     int64   `json:"retries"`
	Seconds     float64 `json:"seconds"`
	LinesPerSec float64 `json:"lines_per_sec"`
	MBPerSec    float64 `json:"mb_per_sec"`
	CPUSeconds  float64 `json:"cpu_seconds"` // the pusher's own user+system time
}

// pushRequest is one encoded request and what it carries.
type pushRequest struct {
	body  []byte
	lines int64
	bytes int64
}

func runPush(args []string) error {
	fs := flag.NewFlagSet("push", flag.ExitOnError)
	var (
		url         = fs.String("url", "", "Loki push endpoint (…/loki/api/v1/push, query parameters allowed).")
		labelsArg   = fs.String("labels", "job=bench", "Labels of every stream, name=value pairs separated by commas; filename=<absolute path> is added per file.")
		concurrency = fs.Int("concurrency", 4, "Requests in flight at once (and files read at once).")
		batchBytes  = fs.Int("batch-bytes", 1<<20, "Line bytes per request (about; a request holds whole lines).")
		tenant      = fs.String("tenant", "", "X-Scope-OrgID header, when set.")
		maxRetries  = fs.Int("max-retries", 20, "Retries of a request answered with 429, 5xx or a connection error.")
	)
	fs.Parse(args) //nolint:errcheck // ExitOnError
	files := fs.Args()
	if *url == "" || len(files) == 0 || *concurrency < 1 || *batchBytes < 1 {
		return errors.New("push: need -url, -concurrency >= 1, -batch-bytes >= 1 and at least one file")
	}
	static, err := parseLabels(*labelsArg)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	client := &http.Client{
		Timeout:   2 * time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: *concurrency, DisableCompression: true},
	}
	var sum pushSummary
	sum.URL, sum.Files = *url, len(files)
	reqs := make(chan pushRequest, *concurrency)
	began := time.Now()

	// Readers: one per file, at most -concurrency at once.
	var readers sync.WaitGroup
	sem := make(chan struct{}, *concurrency)
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return err
		}
		lbls := streamLabels(static, abs)
		readers.Add(1)
		go func() {
			defer readers.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if err := readFile(ctx, abs, lbls, *batchBytes, reqs); err != nil {
				cancel(err)
			}
		}()
	}
	go func() {
		readers.Wait()
		close(reqs)
	}()

	// Senders.
	var senders sync.WaitGroup
	var lines, nbytes, requests, body, retries atomic.Int64
	for range *concurrency {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for r := range reqs {
				if ctx.Err() != nil {
					continue // drain, so that readers do not block
				}
				n, err := send(ctx, client, *url, *tenant, r.body, *maxRetries)
				retries.Add(int64(n))
				if err != nil {
					cancel(err)
					continue
				}
				lines.Add(r.lines)
				nbytes.Add(r.bytes)
				requests.Add(1)
				body.Add(int64(len(r.body)))
			}
		}()
	}
	senders.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	secs := time.Since(began).Seconds()
	sum.Lines, sum.Bytes, sum.Requests, sum.BodyBytes, sum.Retries = lines.Load(), nbytes.Load(), requests.Load(), body.Load(), retries.Load()
	sum.Seconds = round3(secs)
	sum.LinesPerSec = math.Round(float64(sum.Lines) / secs)
	sum.MBPerSec = round3(float64(sum.Bytes) / secs / 1e6)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		sum.CPUSeconds = round3(float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9)
	}
	return json.NewEncoder(os.Stdout).Encode(sum)
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// parseLabels reads name=value,name=value.
func parseLabels(s string) ([][2]string, error) {
	var out [][2]string
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" || name == "filename" {
			return nil, fmt.Errorf("push: bad label %q (want name=value; filename is set per file)", kv)
		}
		out = append(out, [2]string{name, value})
	}
	return out, nil
}

// streamLabels renders a stream's labels as Promtail does: {a="x", b="y"},
// names sorted.
func streamLabels(static [][2]string, path string) string {
	all := append(slices.Clone(static), [2]string{"filename", path})
	slices.SortFunc(all, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range all {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(l[0])
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l[1]))
	}
	b.WriteByte('}')
	return b.String()
}

// readFile cuts a file into push requests of about batchBytes line bytes.
func readFile(ctx context.Context, path, labels string, batchBytes int, out chan<- pushRequest) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	enc := &pushEncoder{labels: labels}
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return fmt.Errorf("push: %s: a line longer than 1 MiB", path)
		}
		if len(line) > 0 {
			raw := len(line)
			line = bytes.TrimSuffix(line, []byte{'\n'})
			enc.add(line, raw)
			if enc.lineBytes >= batchBytes {
				select {
				case out <- enc.finish():
				case <-ctx.Done():
					return nil
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if enc.lines > 0 {
		select {
		case out <- enc.finish():
		case <-ctx.Done():
		}
	}
	return nil
}

// pushEncoder builds one Loki PushRequest holding one stream:
//
//	PushRequest { repeated Stream streams = 1; }
//	Stream      { string labels = 1; repeated Entry entries = 2; }
//	Entry       { google.protobuf.Timestamp timestamp = 1; string line = 2; }
//	Timestamp   { int64 seconds = 1; int32 nanos = 2; }
//
// Entries are appended as they come; the stream's framing is written in
// finish, once its length is known.
type pushEncoder struct {
	labels    string
	entries   []byte
	lines     int64
	lineBytes int   // bytes of the lines without newlines
	rawBytes  int64 // bytes read, newlines included
	ts        int64 // timestamp of the next entry, Unix ns
}

func (e *pushEncoder) add(line []byte, raw int) {
	if e.lines == 0 {
		e.ts = time.Now().UnixNano()
	}
	sec, nsec := e.ts/1e9, e.ts%1e9
	tsLen := protowire.SizeTag(1) + protowire.SizeVarint(uint64(sec)) + protowire.SizeTag(2) + protowire.SizeVarint(uint64(nsec))
	entryLen := protowire.SizeTag(1) + protowire.SizeBytes(tsLen) + protowire.SizeTag(2) + protowire.SizeBytes(len(line))
	b := e.entries
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(entryLen))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(tsLen))
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(sec))
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(nsec))
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, line)
	e.entries = b
	e.lines++
	e.lineBytes += len(line)
	e.rawBytes += int64(raw)
	e.ts++
}

// finish returns the snappy-compressed request and resets the encoder.
func (e *pushEncoder) finish() pushRequest {
	streamLen := protowire.SizeTag(1) + protowire.SizeBytes(len(e.labels)) + len(e.entries)
	req := make([]byte, 0, protowire.SizeTag(1)+protowire.SizeBytes(streamLen))
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	req = protowire.AppendVarint(req, uint64(streamLen))
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	req = protowire.AppendString(req, e.labels)
	req = append(req, e.entries...)
	r := pushRequest{body: snappy.Encode(nil, req), lines: e.lines, bytes: e.rawBytes}
	e.entries, e.lines, e.lineBytes, e.rawBytes = e.entries[:0], 0, 0, 0
	return r
}

// send posts body, retrying what a client should retry. It returns the
// number of retries.
func send(ctx context.Context, c *http.Client, url, tenant string, body []byte, maxRetries int) (int, error) {
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return attempt, err
		}
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("User-Agent", "pharos-bench-loggen")
		if tenant != "" {
			req.Header.Set("X-Scope-OrgID", tenant)
		}
		resp, err := c.Do(req)
		retry := err != nil
		if err == nil {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			switch {
			case resp.StatusCode/100 == 2:
				return attempt, nil
			case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
				retry = true
				err = fmt.Errorf("push: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
			default:
				return attempt, fmt.Errorf("push: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
			}
		}
		if !retry || attempt >= maxRetries || ctx.Err() != nil {
			return attempt, err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return attempt, ctx.Err()
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
