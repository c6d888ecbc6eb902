package spool

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFrameRoundTrip(t *testing.T) {
	var b []byte
	b = appendFrame(b, 1, 10, []byte("first"))
	b = appendFrame(b, 2, 0, nil)
	b = appendFrame(b, 3, 1<<32-1, make([]byte, 1000))
	var got []frame
	res := scan(b, func(f frame) { got = append(got, f) })
	require.Equal(t, scanResult{validEnd: int64(len(b))}, res)
	require.Len(t, got, 3)
	require.Equal(t, frame{off: 0, size: frameExtra + 5, seq: 1, samples: 10}, got[0])
	require.Equal(t, frame{off: frameExtra + 5, size: frameExtra, seq: 2, samples: 0}, got[1])
	require.Equal(t, 1<<32-1, got[2].samples)

	// Parsing is stateless: twice over the same bytes gives the same frames.
	var again []frame
	scan(b, func(f frame) { again = append(again, f) })
	require.Equal(t, got, again)
}

// FuzzScan feeds arbitrary bytes to the segment scanner, as a damaged disk
// might: it must never panic or report a frame that is not there.
func FuzzScan(f *testing.F) {
	valid := appendFrame(appendFrame(nil, 1, 3, []byte("abc")), 2, 1, []byte("defgh"))
	f.Add(valid)
	f.Add(valid[:len(valid)-2])
	f.Add(append(append([]byte{}, valid[:10]...), valid...))
	f.Add([]byte{})
	f.Add(magicBytes)
	f.Fuzz(func(t *testing.T, b []byte) {
		end := int64(0)
		res := scan(b, func(fr frame) {
			if fr.off < end || fr.size < frameExtra || fr.off+fr.size > int64(len(b)) {
				t.Fatalf("frame %+v out of place (previous end %d, len %d)", fr, end, len(b))
			}
			again, ok := parseFrame(b[fr.off:])
			if !ok || again.seq != fr.seq || again.samples != fr.samples || again.size != fr.size {
				t.Fatalf("frame %+v does not parse again", fr)
			}
			end = fr.off + fr.size
		})
		if res.validEnd != end || res.validEnd > int64(len(b)) || res.corrupt < 0 || res.corrupt > int64(len(b)) {
			t.Fatalf("result %+v, last frame end %d, len %d", res, end, len(b))
		}
		// Frames written after whatever was there are found again.
		tail := appendFrame(nil, 99, 7, b)
		var last frame
		scan(append(append([]byte{}, b...), tail...), func(fr frame) { last = fr })
		if last.seq != 99 || last.samples != 7 {
			t.Fatalf("appended frame not found after %d bytes: %+v", len(b), last)
		}
	})
}
