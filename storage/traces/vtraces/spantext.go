package vtraces

import (
	"fmt"
	"slices"
)

// A span's OTLP record (appendSpanRecord) is stored as text over an
// alphabet of 64 ASCII bytes that are neither letters, digits nor '_'.
//
// lib/logstorage builds a bloom filter from the tokens of every column it
// writes, again at every merge: runs of ASCII letters, digits and '_',
// and, in a value with any byte above 0x7F, of Unicode letters and
// digits. Raw protobuf is such a value, so every record went through the
// tokenizer's slow Unicode path and filled the bloom filters with short
// tokens of random bytes that no query looks up (the record is read by
// the row, never searched): three quarters of the tokenizing on the trace
// benchmark. Text of this alphabet has no token at all and stays on the
// ASCII path. It is a third longer than the bytes, which zstd, compressing
// every column, takes back for the most part.
//
// spanTextMarker starts the text; a record stored raw (by versions before
// this encoding) starts with 0x0A, the tag of TracesData.resource_spans,
// and is still read as it is.
const spanTextMarker = '!'

// spanTextAlphabet holds the 64 symbols, by value. It is every ASCII byte
// that lib/logstorage's tokenizer does not count as part of a token,
// except DEL.
var spanTextAlphabet = func() (a [64]byte) {
	n := 0
	for c := range 0x7F {
		if !isTokenByte(byte(c)) {
			a[n] = byte(c)
			n++
		}
	}
	if n != len(a) {
		panic(fmt.Sprintf("vtraces: %d non-token ASCII bytes below DEL, want 64", n))
	}
	return a
}()

// spanTextValues maps a symbol to its value, 0xFF for a byte that is not
// a symbol.
var spanTextValues = func() (v [256]byte) {
	for i := range v {
		v[i] = 0xFF
	}
	for i, c := range spanTextAlphabet {
		v[c] = byte(i)
	}
	return v
}()

// isTokenByte reports whether lib/logstorage's tokenizer takes the ASCII
// byte c as part of a token (tokenizer.go there).
func isTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// spanTextLen returns the length of the text of n bytes.
func spanTextLen(n int) int { return 1 + (n*8+5)/6 }

// appendSpanText appends the text of b to dst: marker, then four symbols
// for each three bytes, the last group shortened to two or three symbols
// for one or two bytes (no padding: the length tells).
func appendSpanText(dst []byte, marker byte, b []byte) []byte {
	a := &spanTextAlphabet
	dst = slices.Grow(dst, spanTextLen(len(b))) // one allocation at most
	dst = append(dst, marker)
	for len(b) >= 3 {
		v := uint(b[0])<<16 | uint(b[1])<<8 | uint(b[2])
		dst = append(dst, a[v>>18], a[v>>12&0x3F], a[v>>6&0x3F], a[v&0x3F])
		b = b[3:]
	}
	switch len(b) {
	case 2:
		v := uint(b[0])<<16 | uint(b[1])<<8
		dst = append(dst, a[v>>18], a[v>>12&0x3F], a[v>>6&0x3F])
	case 1:
		v := uint(b[0]) << 16
		dst = append(dst, a[v>>18], a[v>>12&0x3F])
	}
	return dst
}

// appendSpanRecordBytes appends the record stored as s to dst: s decoded
// if it is text, s itself if it was stored raw.
func appendSpanRecordBytes(dst []byte, s string) ([]byte, error) {
	if s == "" || s[0] != spanTextMarker {
		return append(dst, s...), nil
	}
	return decodeSpanText(dst, s[1:])
}

// decodeSpanText appends the bytes of s, text without its marker, to dst.
func decodeSpanText(dst []byte, s string) ([]byte, error) {
	if len(s)%4 == 1 {
		return dst, fmt.Errorf("%w: stored text of %d symbols", errWire, len(s))
	}
	val := &spanTextValues
	for len(s) >= 4 {
		c0, c1, c2, c3 := val[s[0]], val[s[1]], val[s[2]], val[s[3]]
		if (c0|c1|c2|c3)&0xC0 != 0 { // 0xFF: not a symbol
			return dst, fmt.Errorf("%w: a stored text byte is not a symbol", errWire)
		}
		v := uint(c0)<<18 | uint(c1)<<12 | uint(c2)<<6 | uint(c3)
		dst = append(dst, byte(v>>16), byte(v>>8), byte(v))
		s = s[4:]
	}
	if len(s) == 0 {
		return dst, nil
	}
	var v uint
	for i := range len(s) {
		c := val[s[i]]
		if c == 0xFF {
			return dst, fmt.Errorf("%w: a stored text byte is not a symbol", errWire)
		}
		v |= uint(c) << (18 - 6*i)
	}
	// The bits below the last whole byte must be zero, as the encoder
	// leaves them: otherwise two texts would decode to the same bytes.
	if len(s) == 2 {
		if v&0xFFFF != 0 {
			return dst, fmt.Errorf("%w: stored text has trailing bits", errWire)
		}
		return append(dst, byte(v>>16)), nil
	}
	if v&0xFF != 0 {
		return dst, fmt.Errorf("%w: stored text has trailing bits", errWire)
	}
	return append(dst, byte(v>>16), byte(v>>8)), nil
}
