// Package logparse decodes log lines: the container runtimes' file formats
// (CRI and docker json-file), and the field formats of a message (JSON,
// logfmt, a regular expression with named groups).
//
// Parsing is on the agent's hot path, so nothing here allocates per line
// once its buffers have grown: results alias the input line or a buffer the
// parser owns and reuses, and stay valid only until the next call on the
// same Record or parser. Copy what must outlive that. Parsers are not safe
// for concurrent use; give each goroutine its own.
//
// Every parser takes bytes from outside the process: malformed input
// returns an error (a sentinel, so that failing lines do not allocate
// either), never a panic.
package logparse

import "errors"

var (
	// ErrMalformedCRI is returned for a line that is not
	// "<time> <stream> <tag> <message>".
	ErrMalformedCRI = errors.New("logparse: malformed CRI log line")
	// ErrMalformedDocker is returned for a line that is not a docker
	// json-file object with a string "log" member.
	ErrMalformedDocker = errors.New("logparse: malformed docker json-file line")
	// ErrMalformedJSON is returned for a line that is not one JSON object.
	ErrMalformedJSON = errors.New("logparse: malformed JSON object")
	// ErrMalformedLogfmt is returned for a line that is not logfmt.
	ErrMalformedLogfmt = errors.New("logparse: malformed logfmt")
	// ErrNoMatch is returned by Regex.Parse for a line the expression does
	// not match.
	ErrNoMatch = errors.New("logparse: line does not match the expression")
	// ErrBadTimestamp is returned by ParseTimestamp for anything but an
	// RFC 3339 timestamp.
	ErrBadTimestamp = errors.New("logparse: malformed RFC 3339 timestamp")
)

// Stream is the output stream a container runtime recorded a line from.
type Stream uint8

// The streams. StreamUnknown is for lines that do not say (plain files).
const (
	StreamUnknown Stream = iota
	StreamStdout
	StreamStderr
)

// String returns the stream's name as the runtimes write it, or "" for
// StreamUnknown.
func (s Stream) String() string {
	switch s {
	case StreamStdout:
		return "stdout"
	case StreamStderr:
		return "stderr"
	}
	return ""
}

// Field is one named value a FieldParser found in a line. Both slices
// alias the line or the parser's buffer.
type Field struct {
	Name  []byte
	Value []byte
}

// FieldParser extracts named fields from a log message. The returned slice
// and the bytes it points to are reused by the next call. On error the
// fields found before the error may be returned too; callers that want all
// or nothing ignore them.
type FieldParser interface {
	Parse(line []byte) ([]Field, error)
}
