package logparse

import (
	"testing"
)

var (
	benchCRI    = []byte("2024-05-01T12:34:56.123456789Z stdout F level=info ts=2024-05-01T12:34:56.123Z caller=main.go:42 msg=\"request served\" method=GET path=/api/v1/query status=200 duration=1.234ms")
	benchDocker = []byte(`{"log":"level=info ts=2024-05-01T12:34:56.123Z caller=main.go:42 msg=\"request served\" method=GET path=/api/v1/query status=200 duration=1.234ms\n","stream":"stdout","time":"2024-05-01T12:34:56.123456789Z"}`)
	benchJSON   = []byte(`{"level":"info","ts":"2024-05-01T12:34:56.123Z","caller":"main.go:42","msg":"request served","method":"GET","path":"/api/v1/query","status":200,"duration":"1.234ms"}`)
	benchLogfmt = []byte(`level=info ts=2024-05-01T12:34:56.123Z caller=main.go:42 msg="request served" method=GET path=/api/v1/query status=200 duration=1.234ms`)
)

func BenchmarkParseTimestamp(b *testing.B) {
	in := []byte("2024-05-01T12:34:56.123456789Z")
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := ParseTimestamp(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseCRI(b *testing.B) {
	var r Record
	b.ReportAllocs()
	b.SetBytes(int64(len(benchCRI)))
	for b.Loop() {
		if err := ParseCRI(&r, benchCRI); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseDocker(b *testing.B) {
	var r Record
	b.ReportAllocs()
	b.SetBytes(int64(len(benchDocker)))
	for b.Loop() {
		if err := ParseDocker(&r, benchDocker); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJSON(b *testing.B) {
	var p JSON
	b.ReportAllocs()
	b.SetBytes(int64(len(benchJSON)))
	for b.Loop() {
		if _, err := p.Parse(benchJSON); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLogfmt(b *testing.B) {
	var p Logfmt
	b.ReportAllocs()
	b.SetBytes(int64(len(benchLogfmt)))
	for b.Loop() {
		if _, err := p.Parse(benchLogfmt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRegex(b *testing.B) {
	p, err := NewRegex(`level=(?P<level>\w+) .*status=(?P<status>\d+)`)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchLogfmt)))
	for b.Loop() {
		if _, err := p.Parse(benchLogfmt); err != nil {
			b.Fatal(err)
		}
	}
}
