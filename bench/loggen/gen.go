package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"
)

// Line kinds. A file is mostly one kind (one container's log) with a share
// of the others mixed in (sidecars, libraries logging their own way).
const (
	kindLogfmt = iota
	kindJSON
	kindAccess
	nKinds
)

var kindNames = [nKinds]string{"logfmt", "json", "access"}

// primaryShare is the share of a file's lines in its own kind.
const primaryShare = 0.8

// genFile is one generated file's outcome.
type genFile struct {
	Path        string `json:"path"`
	Kind        string `json:"kind"`
	Lines       int64  `json:"lines"`
	Bytes       int64  `json:"bytes"`
	NeedleLines int64  `json:"needle_lines"`
}

// genSummary is what gen prints to stdout.
type genSummary struct {
	Dir         string    `json:"dir"`
	Seed        uint64    `json:"seed"`
	Needle      string    `json:"needle"`
	NeedleEvery int       `json:"needle_every"`
	Lines       int64     `json:"lines"`
	Bytes       int64     `json:"bytes"`
	NeedleLines int64     `json:"needle_lines"`
	Seconds     float64   `json:"seconds"`
	Files       []genFile `json:"files"`
}

func runGen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	var (
		dir         = fs.String("dir", "", "Directory to write the files into (created if missing).")
		mb          = fs.Float64("mb", 1024, "MiB to write in all.")
		files       = fs.Int("files", 8, "Number of files; the bytes are split evenly.")
		seed        = fs.Uint64("seed", 1, "Random seed; the same seed and sizes give the same bytes.")
		needle      = fs.String("needle", "NEEDLE-qzxj7", "String carried by every -needle-every-th line of each file and by no other line.")
		needleEvery = fs.Int("needle-every", 100_000, "One line in this many carries -needle.")
		prefix      = fs.String("prefix", "app", "File names: <prefix>-<i>.log.")
		start       = fs.String("start", "2026-11-27T08:00:00Z", "Timestamp of the first line of each file (RFC 3339).")
	)
	fs.Parse(args) //nolint:errcheck // ExitOnError
	if *dir == "" || *mb <= 0 || *files < 1 || *needleEvery < 1 || *needle == "" {
		return errors.New("gen: need -dir, -mb > 0, -files >= 1, -needle-every >= 1 and a -needle")
	}
	t0, err := time.Parse(time.RFC3339, *start)
	if err != nil {
		return fmt.Errorf("gen: -start: %w", err)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	total := int64(*mb * (1 << 20))
	v := newVocab(*seed)
	began := time.Now()

	out := make([]genFile, *files)
	errs := make([]error, *files)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i := range *files {
		size := total / int64(*files)
		if i == *files-1 {
			size = total - size*int64(*files-1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			g := newFileGen(v, *seed, i, t0, []byte(*needle), *needleEvery)
			path := filepath.Join(*dir, fmt.Sprintf("%s-%d.log", *prefix, i))
			out[i], errs[i] = g.writeFile(path, size)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s := genSummary{Dir: *dir, Seed: *seed, Needle: *needle, NeedleEvery: *needleEvery, Files: out}
	for _, f := range out {
		s.Lines += f.Lines
		s.Bytes += f.Bytes
		s.NeedleLines += f.NeedleLines
	}
	s.Seconds = math.Round(time.Since(began).Seconds()*1000) / 1000
	return json.NewEncoder(os.Stdout).Encode(s)
}

// fileGen writes one file's lines. Not safe for concurrent use.
type fileGen struct {
	v       *vocab
	r       *rand.Rand
	kind    int
	service int
	needle  []byte
	every   int64
	offset  int64 // needle lines are those with (line+offset)%every == 0

	ts     int64 // current timestamp, Unix ns
	sec    int64 // the second isoSec and clfSec render
	isoSec []byte
	clfSec []byte
}

func newFileGen(v *vocab, seed uint64, file int, start time.Time, needle []byte, every int) *fileGen {
	r := rand.New(rand.NewPCG(seed, uint64(file)+1))
	return &fileGen{
		v: v, r: r,
		kind:    file % nKinds,
		service: (file*7 + 3) % len(v.services),
		needle:  needle,
		every:   int64(every),
		offset:  int64(every/2) + int64(file)*7919%int64(every),
		ts:      start.UnixNano() + int64(file)*int64(time.Millisecond)*37,
		sec:     -1,
	}
}

// writeFile writes lines to path until it holds at least size bytes.
func (g *fileGen) writeFile(path string, size int64) (genFile, error) {
	res := genFile{Path: path, Kind: kindNames[g.kind]}
	f, err := os.Create(path)
	if err != nil {
		return res, err
	}
	buf := make([]byte, 0, 1<<20+64<<10)
	var line int64
	for res.Bytes < size {
		start := len(buf)
		isNeedle := (line+g.offset)%g.every == 0
		buf = g.appendLine(buf, isNeedle)
		buf = append(buf, '\n')
		if isNeedle {
			res.NeedleLines++
		} else if bytes.Contains(buf[start:], g.needle) {
			f.Close()
			return res, fmt.Errorf("gen: line %d of %s contains the needle %q by chance: pick another -needle", line+1, path, g.needle)
		}
		res.Bytes += int64(len(buf) - start)
		line++
		if len(buf) >= 1<<20 {
			if _, err := f.Write(buf); err != nil {
				f.Close()
				return res, err
			}
			buf = buf[:0]
		}
	}
	res.Lines = line
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return res, err
	}
	return res, f.Close()
}

// appendLine appends one line (without the newline) and advances time.
func (g *fileGen) appendLine(b []byte, needle bool) []byte {
	// Lines arrive about 2 ms apart on average, in bursts.
	g.ts += int64(g.r.ExpFloat64()*2e6) + 1
	if s := g.ts / 1e9; s != g.sec {
		g.sec = s
		t := time.Unix(s, 0).UTC()
		g.isoSec = t.AppendFormat(g.isoSec[:0], "2006-01-02T15:04:05")
		g.clfSec = t.AppendFormat(g.clfSec[:0], "02/Jan/2006:15:04:05 -0700")
	}
	kind := g.kind
	if g.r.Float64() >= primaryShare {
		kind = (kind + 1 + g.r.IntN(nKinds-1)) % nKinds
	}
	switch kind {
	case kindLogfmt:
		return g.appendLogfmt(b, needle)
	case kindJSON:
		return g.appendJSON(b, needle)
	default:
		return g.appendAccess(b, needle)
	}
}

// skewed returns an index in [0, n) with small indexes much more likely,
// as popular paths and busy clients are.
func (g *fileGen) skewed(n int, power float64) int {
	return int(math.Pow(g.r.Float64(), power) * float64(n))
}

// durationMicros draws a request-like latency (log-normal, median ~15 ms).
func (g *fileGen) durationMicros() int64 {
	return int64(math.Exp(g.r.NormFloat64()*1.1+math.Log(15000))) + 50
}

func (g *fileGen) status() int {
	switch x := g.r.IntN(1000); {
	case x < 780:
		return 200
	case x < 840:
		return 201
	case x < 870:
		return 204
	case x < 910:
		return 304
	case x < 930:
		return 400
	case x < 945:
		return 401
	case x < 970:
		return 404
	case x < 975:
		return 409
	case x < 985:
		return 429
	case x < 993:
		return 500
	case x < 997:
		return 502
	default:
		return 503
	}
}

func (g *fileGen) method() string {
	switch x := g.r.IntN(100); {
	case x < 74:
		return "GET"
	case x < 89:
		return "POST"
	case x < 93:
		return "PUT"
	case x < 95:
		return "DELETE"
	case x < 96:
		return "PATCH"
	case x < 97:
		return "HEAD"
	default:
		return "OPTIONS"
	}
}

// appendPath appends a path, with a fresh id for templated ones and
// sometimes a query string on a GET.
func (g *fileGen) appendPath(b []byte, method string) []byte {
	p := g.v.paths[g.skewed(len(g.v.paths), 2)]
	for i := 0; i < len(p); i++ {
		if p[i] == '#' {
			b = strconv.AppendInt(b, int64(1+g.r.IntN(5_000_000)), 10)
		} else {
			b = append(b, p[i])
		}
	}
	if method == "GET" && g.r.IntN(5) == 0 {
		b = append(b, g.v.queries[g.r.IntN(len(g.v.queries))]...)
	}
	return b
}

func (g *fileGen) appendISO(b []byte, digits int) []byte {
	b = append(b, g.isoSec...)
	b = append(b, '.')
	frac := g.ts % 1e9
	div := int64(1e9)
	for range digits {
		div /= 10
		b = append(b, byte('0'+frac/div%10))
	}
	return append(b, 'Z')
}

func (g *fileGen) appendHex(b []byte, n int) []byte {
	x := g.r.Uint64()
	for i := range n {
		if i == 16 {
			x = g.r.Uint64()
		}
		b = append(b, hexDigits[x&15])
		x >>= 4
	}
	return b
}

// appendMillis appends micros as milliseconds with three decimals.
func appendMillis(b []byte, micros int64) []byte {
	b = strconv.AppendInt(b, micros/1000, 10)
	b = append(b, '.')
	f := micros % 1000
	return append(b, byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
}

func appendSeconds(b []byte, micros int64) []byte {
	b = strconv.AppendInt(b, micros/1_000_000, 10)
	b = append(b, '.')
	f := micros / 1000 % 1000
	return append(b, byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10))
}

func (g *fileGen) appendUser(b []byte) []byte {
	b = append(b, "u-"...)
	return strconv.AppendInt(b, int64(100000+g.skewed(250_000, 1.5)), 10)
}

func (g *fileGen) pick(list []string) string { return list[g.r.IntN(len(list))] }

func (g *fileGen) appendLogfmt(b []byte, needle bool) []byte {
	b = append(b, "ts="...)
	b = g.appendISO(b, 6)
	x := g.r.IntN(100)
	level := "info"
	switch {
	case x < 55:
		// request log; level from the status below
	case x < 80:
		level = "debug"
	case x >= 95:
		level = "error"
		if g.r.IntN(3) > 0 {
			level = "warn"
		}
	}
	var status int
	if x < 55 {
		status = g.status()
		if status >= 500 {
			level = "error"
		} else if status == 429 {
			level = "warn"
		}
	}
	b = append(b, " level="...)
	b = append(b, level...)
	b = append(b, " service="...)
	b = append(b, g.v.services[g.service]...)
	b = append(b, " caller="...)
	b = append(b, g.pick(g.v.callers)...)
	switch {
	case x < 55:
		m := g.method()
		b = append(b, ` msg="request completed" method=`...)
		b = append(b, m...)
		b = append(b, " path="...)
		b = g.appendPath(b, m)
		b = append(b, " status="...)
		b = strconv.AppendInt(b, int64(status), 10)
		b = append(b, " duration="...)
		b = appendMillis(b, g.durationMicros())
		b = append(b, "ms bytes="...)
		b = strconv.AppendInt(b, int64(g.r.IntN(60000)), 10)
		b = append(b, " trace_id="...)
		b = g.appendHex(b, 32)
		if g.r.IntN(3) > 0 {
			b = append(b, " user_id="...)
			b = g.appendUser(b)
		}
	case x < 70:
		ops := [...]string{"select", "select", "select", "insert", "update", "delete"}
		b = append(b, ` msg="query executed" table=`...)
		b = append(b, g.pick(g.v.tables)...)
		b = append(b, " op="...)
		b = append(b, ops[g.r.IntN(len(ops))]...)
		b = append(b, " rows="...)
		b = strconv.AppendInt(b, int64(g.skewed(500, 3)), 10)
		b = append(b, " duration="...)
		b = appendMillis(b, g.durationMicros()/8)
		b = append(b, "ms trace_id="...)
		b = g.appendHex(b, 32)
	case x < 80:
		kinds := [...]string{"product:", "session:", "cart:", "price:", "user:"}
		if g.r.IntN(4) == 0 {
			b = append(b, ` msg="cache miss" key=`...)
		} else {
			b = append(b, ` msg="cache hit" key=`...)
		}
		b = append(b, kinds[g.r.IntN(len(kinds))]...)
		b = strconv.AppendInt(b, int64(g.r.IntN(2_000_000)), 10)
		b = append(b, " ttl="...)
		b = strconv.AppendInt(b, int64(60*(1+g.r.IntN(10))), 10)
		b = append(b, 's')
	case x < 88:
		b = append(b, ` msg="job finished" queue=`...)
		b = append(b, g.pick(g.v.queues)...)
		b = append(b, " job_id="...)
		b = g.appendHex(b, 8)
		b = append(b, '-')
		b = g.appendHex(b, 4)
		b = append(b, '-')
		b = g.appendHex(b, 12)
		b = append(b, " attempt="...)
		b = strconv.AppendInt(b, int64(1+g.skewed(3, 4)), 10)
		b = append(b, " duration="...)
		b = appendSeconds(b, g.durationMicros()*40)
		b = append(b, 's')
	case x < 95:
		b = append(b, ` msg="committed offsets" topic=`...)
		b = append(b, g.pick(g.v.topics)...)
		b = append(b, " partition="...)
		b = strconv.AppendInt(b, int64(g.r.IntN(12)), 10)
		b = append(b, " offset="...)
		b = strconv.AppendInt(b, (g.ts/1e6)%100_000_000+int64(g.r.IntN(1000)), 10)
		b = append(b, " lag="...)
		b = strconv.AppendInt(b, int64(g.skewed(5000, 4)), 10)
	default:
		b = append(b, ` msg="upstream request failed" upstream=`...)
		b = append(b, g.pick(g.v.upstreams)...)
		b = append(b, ` err="`...)
		b = append(b, g.pick(g.v.errs)...)
		b = append(b, `" attempt=`...)
		b = strconv.AppendInt(b, int64(1+g.r.IntN(3)), 10)
		b = append(b, " retry_in="...)
		b = strconv.AppendInt(b, int64(100*(1+g.r.IntN(8))), 10)
		b = append(b, "ms trace_id="...)
		b = g.appendHex(b, 32)
	}
	if needle {
		b = append(b, " debug_tag="...)
		b = append(b, g.needle...)
	}
	return b
}

func (g *fileGen) appendJSON(b []byte, needle bool) []byte {
	b = append(b, `{"@timestamp":"`...)
	b = g.appendISO(b, 3)
	x := g.r.IntN(100)
	level := "INFO"
	switch {
	case x >= 96:
		level = "ERROR"
	case x >= 90:
		level = "WARN"
	case x >= 80:
		level = "DEBUG"
	}
	b = append(b, `","level":"`...)
	b = append(b, level...)
	b = append(b, `","logger":"`...)
	b = append(b, g.v.loggers[g.skewed(len(g.v.loggers), 1.5)]...)
	b = append(b, `","thread":"http-nio-8080-exec-`...)
	b = strconv.AppendInt(b, int64(1+g.r.IntN(200)), 10)
	b = append(b, `","service":"`...)
	b = append(b, g.v.services[g.service]...)
	b = append(b, `","message":"`...)
	withTrace := true
	switch {
	case x < 35:
		m := g.method()
		st := g.status()
		d := g.durationMicros() / 1000
		b = append(b, "Completed "...)
		b = strconv.AppendInt(b, int64(st), 10)
		b = append(b, " in "...)
		b = strconv.AppendInt(b, d, 10)
		b = append(b, `ms","method":"`...)
		b = append(b, m...)
		b = append(b, `","uri":"`...)
		b = g.appendPath(b, m)
		b = append(b, `","status":`...)
		b = strconv.AppendInt(b, int64(st), 10)
		b = append(b, `,"durationMs":`...)
		b = strconv.AppendInt(b, d, 10)
	case x < 55:
		id := int64(1 + g.r.IntN(5_000_000))
		b = append(b, "Order "...)
		b = strconv.AppendInt(b, id, 10)
		b = append(b, ` placed","orderId":`...)
		b = strconv.AppendInt(b, id, 10)
		b = append(b, `,"userId":"`...)
		b = g.appendUser(b)
		b = append(b, `","amountCents":`...)
		b = strconv.AppendInt(b, int64(99+g.r.IntN(50000)), 10)
		cur := [...]string{"EUR", "EUR", "USD", "GBP", "CHF"}
		b = append(b, `,"currency":"`...)
		b = append(b, cur[g.r.IntN(len(cur))]...)
		b = append(b, `","items":`...)
		b = strconv.AppendInt(b, int64(1+g.skewed(12, 2)), 10)
	case x < 70:
		b = append(b, `Payment authorized","paymentId":"pi_`...)
		b = g.appendHex(b, 24)
		b = append(b, `","provider":"stripe","amountCents":`...)
		b = strconv.AppendInt(b, int64(99+g.r.IntN(50000)), 10)
		b = append(b, `,"latencyMs":`...)
		b = strconv.AppendInt(b, g.durationMicros()/500, 10)
	case x < 80:
		withTrace = false
		total := 10 + 10*g.r.IntN(3)
		active := g.r.IntN(total + 1)
		b = append(b, "HikariPool-1 - Pool stats (total="...)
		b = strconv.AppendInt(b, int64(total), 10)
		b = append(b, ", active="...)
		b = strconv.AppendInt(b, int64(active), 10)
		b = append(b, ", idle="...)
		b = strconv.AppendInt(b, int64(total-active), 10)
		b = append(b, ", waiting="...)
		b = strconv.AppendInt(b, int64(g.skewed(8, 4)), 10)
		b = append(b, `)"`...)
	case x < 96:
		b = append(b, "Retrying request to "...)
		b = append(b, g.pick(g.v.upstreams)...)
		b = append(b, " (attempt "...)
		b = strconv.AppendInt(b, int64(1+g.r.IntN(3)), 10)
		b = append(b, "/3): "...)
		b = append(b, g.pick(g.v.errs)...)
		b = append(b, '"')
	default:
		b = append(b, "Failed to process message from topic "...)
		b = append(b, g.pick(g.v.topics)...)
		b = append(b, `","exception":"java.net.SocketTimeoutException: Read timed out","offset":`...)
		b = strconv.AppendInt(b, (g.ts/1e6)%100_000_000, 10)
	}
	if withTrace {
		b = append(b, `,"traceId":"`...)
		b = g.appendHex(b, 32)
		b = append(b, `","spanId":"`...)
		b = g.appendHex(b, 16)
		b = append(b, '"')
	}
	if needle {
		b = append(b, `,"tag":"`...)
		b = append(b, g.needle...)
		b = append(b, '"')
	}
	return append(b, '}')
}

func (g *fileGen) appendAccess(b []byte, needle bool) []byte {
	ip := g.v.ips[g.skewed(len(g.v.ips), 3)]
	b = append(b, ip...)
	b = append(b, " - - ["...)
	b = append(b, g.clfSec...)
	b = append(b, `] "`...)
	m := g.method()
	b = append(b, m...)
	b = append(b, ' ')
	b = g.appendPath(b, m)
	if needle {
		b = append(b, "?tag="...)
		b = append(b, g.needle...)
	}
	if g.r.IntN(3) == 0 {
		b = append(b, ` HTTP/2.0" `...)
	} else {
		b = append(b, ` HTTP/1.1" `...)
	}
	st := g.status()
	b = strconv.AppendInt(b, int64(st), 10)
	b = append(b, ' ')
	if st == 204 || st == 304 {
		b = append(b, '0')
	} else {
		b = strconv.AppendInt(b, int64(g.skewed(200_000, 3)+120), 10)
	}
	b = append(b, ` "`...)
	b = append(b, g.pick(g.v.referers)...)
	b = append(b, `" "`...)
	b = append(b, g.v.agents[g.skewed(len(g.v.agents), 2)]...)
	b = append(b, `" rt=`...)
	d := g.durationMicros()
	b = appendSeconds(b, d)
	if st == 304 || g.r.IntN(10) == 0 { // served by nginx itself
		b = append(b, " uct=- urt=-"...)
	} else {
		b = append(b, " uct="...)
		b = appendSeconds(b, d/20)
		b = append(b, " urt="...)
		b = appendSeconds(b, d-d/50)
	}
	return b
}
