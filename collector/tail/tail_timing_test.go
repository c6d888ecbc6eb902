package tail

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// benchMessage is a typical application line, about 130 bytes.
const benchMessage = `level=info ts=2024-05-01T12:34:56.123Z caller=main.go:42 msg="request served" method=GET path=/api/v1/query status=200 duration=1.234ms`

func benchContent(format string, size int) []byte {
	var b strings.Builder
	for i := 0; b.Len() < size; i++ {
		switch format {
		case FormatCRI:
			fmt.Fprintf(&b, "2024-05-01T12:34:56.%09dZ stdout F %s\n", i%1e9, benchMessage)
		case FormatDocker:
			fmt.Fprintf(&b, `{"log":%q,"stream":"stdout","time":"2024-05-01T12:34:56.%09dZ"}`+"\n", benchMessage+"\n", i%1e9)
		default:
			b.WriteString(benchMessage + "\n")
		}
	}
	return []byte(b.String())
}

func benchTailer(b *testing.B, mod func(*Config)) *Tailer {
	cfg := testConfig(b.TempDir())
	mod(&cfg)
	tl, err := New(cfg, SinkFunc(nil), filepath.Join(b.TempDir(), "positions.json"), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	tl.now = time.Now()
	return tl
}

// BenchmarkSplit is the line splitter alone: raw lines from memory into a
// batch, the batch handed over (reset) whenever it is full.
func BenchmarkSplit(b *testing.B) {
	tl := benchTailer(b, func(c *Config) {})
	chunk := benchContent(FormatRaw, readBufferSize)
	chunk = chunk[:strings.LastIndexByte(string(chunk), '\n')+1]
	f := &tailedFile{path: "/x.log", fp: fnvOffset, labels: tl.fileLabels("/x.log")}
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		for data := chunk; len(data) > 0; {
			if !tl.room() {
				tl.cur.reset()
			}
			n := tl.processChunk(f, data)
			f.readOff += int64(n)
			data = data[n:]
		}
	}
}

// BenchmarkReadSplitParse is the hot path end to end, without the sink:
// read a file from disk (page cache), split, decode, parse and build the
// batch.
func BenchmarkReadSplitParse(b *testing.B) {
	for _, bc := range []struct {
		name string
		mod  func(*Config)
	}{
		{name: "raw", mod: func(c *Config) { c.Format = FormatRaw }},
		{name: "cri", mod: func(c *Config) { c.Format = FormatCRI }},
		{name: "docker", mod: func(c *Config) { c.Format = FormatDocker }},
		{name: "cri+logfmt", mod: func(c *Config) {
			c.Format = FormatCRI
			c.Parse = ParseConfig{Kind: ParseLogfmt, Labels: StringList{"level"}, Metadata: StringList{"caller"}}
		}},
		{name: "cri+multiline", mod: func(c *Config) { c.Format = FormatCRI; c.Multiline.FirstLine = `^level=` }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tl := benchTailer(b, bc.mod)
			format := tl.cfg.Format
			path := filepath.Join(b.TempDir(), "bench.log")
			content := benchContent(format, 4<<20)
			if err := os.WriteFile(path, content, 0o644); err != nil {
				b.Fatal(err)
			}
			fd, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			defer fd.Close()
			f := &tailedFile{path: path, fd: fd, labels: tl.fileLabels(path)}
			size := int64(len(content))
			b.ReportAllocs()
			b.SetBytes(size)
			for b.Loop() {
				f.readOff, f.lineOff, f.size, f.tailN, f.fp, f.fpLen = 0, 0, 0, 0, fnvOffset, 0
				for f.readOff < size {
					if !tl.room() {
						tl.cur.reset()
					}
					tl.readChunk(f)
				}
				tl.cur.reset()
			}
		})
	}
}
