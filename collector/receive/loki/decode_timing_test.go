package loki

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/receive/receivetest"
	"github.com/pharos-obs/pharos/storage/logs"
)

// A Promtail-like push: 10 streams of 500 entries, lines of about 150
// bytes (one in four with a JSON escape), one in four entries with a
// trace_id in structured metadata.
const (
	benchStreams = 10
	benchEntries = 500
)

func benchLine(i, j int) string {
	l := fmt.Sprintf(`level=info ts=2026-05-01T12:00:%02d.%06dZ caller=handler.go:%d msg="request served" method=GET path=/api/v1/items/%d status=200 duration=%dms`,
		j%60, j*7, 100+i, j, j%97)
	if j%4 == 1 {
		l += "\twith a tab"
	}
	return l
}

func benchLabels(i int) string {
	return fmt.Sprintf(`{app="checkout-%d", env="prod", namespace="shop", pod="checkout-7d9f8b6c5-x2x4z", container="app"}`, i)
}

func benchJSON() []byte {
	var b strings.Builder
	b.WriteString(`{"streams":[`)
	for i := range benchStreams {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"stream":{"app":"checkout-%d","env":"prod","namespace":"shop","pod":"checkout-7d9f8b6c5-x2x4z","container":"app"},"values":[`, i)
		for j := range benchEntries {
			if j > 0 {
				b.WriteByte(',')
			}
			// The lines are ASCII: Go's quoting is JSON's.
			fmt.Fprintf(&b, `["%d",%s`, 1777636800000000000+int64(j)*1e6, strconv.Quote(benchLine(i, j)))
			if j%4 == 0 {
				fmt.Fprintf(&b, `,{"trace_id":"%032x"}`, j)
			}
			b.WriteByte(']')
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func benchProtobuf() []byte {
	var streams [][]byte
	for i := range benchStreams {
		var entries [][]byte
		for j := range benchEntries {
			var meta []string
			if j%4 == 0 {
				meta = []string{"trace_id", fmt.Sprintf("%032x", j)}
			}
			entries = append(entries, pbEntry(1777636800000000000+int64(j)*1e6, benchLine(i, j), meta...))
		}
		streams = append(streams, pbStream(benchLabels(i), entries...))
	}
	return pbPush(streams...)
}

func benchDecode(b *testing.B, body []byte, decode func(*decoder, []byte) error) {
	d := newDecoder(64 << 20)
	require.NoError(b, decode(d, body))
	require.Equal(b, benchStreams*benchEntries, receive.CountEntries(d.result()))
	d.reset()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := decode(d, body); err != nil {
			b.Fatal(err)
		}
		d.reset()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(benchStreams*benchEntries), "ns/entry")
}

// BenchmarkDecodeJSON is the JSON decoder alone on a 5,000-entry push.
func BenchmarkDecodeJSON(b *testing.B) {
	benchDecode(b, benchJSON(), (*decoder).decodeJSON)
}

// BenchmarkDecodeProtobuf is the protobuf decoder alone (snappy undone).
func BenchmarkDecodeProtobuf(b *testing.B) {
	benchDecode(b, benchProtobuf(), (*decoder).decodeProtobuf)
}

// benchHandler is a whole request (decompression, decoding, checks) into
// a sink that keeps nothing.
func benchHandler(b *testing.B, body []byte, hdr ...string) {
	cfg, lim, lc := defaults()
	logger := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	in, err := receive.New(cfg, lim, receivetest.Discard{}, logger, reg)
	require.NoError(b, err)
	discard := receive.LogsSinkFunc(func(context.Context, string, []logs.Stream) error { return nil })
	li, err := receive.NewLogsIntake(lc, in, discard, logger, reg)
	require.NoError(b, err)
	h := NewHandler(li, logger)
	rd := bytes.NewReader(body)
	req, err := http.NewRequest(http.MethodPost, Path, rd)
	require.NoError(b, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := &receivetest.DiscardWriter{}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		req.Body = io.NopCloser(rd)
		clear(w.H)
		h.ServeHTTP(w, req)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d", w.Code)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(benchStreams*benchEntries), "ns/entry")
}

func BenchmarkHandlerJSON(b *testing.B) {
	benchHandler(b, benchJSON(), "Content-Type", contentTypeJSON)
}

func BenchmarkHandlerProtobuf(b *testing.B) {
	benchHandler(b, snappy.Encode(nil, benchProtobuf()), "Content-Type", contentTypeProtobuf)
}
