package logparse

import (
	"bytes"
	"time"
)

// Record is one physical line of a container runtime's log file, decoded.
// Reuse one Record across lines: its buffer then stops growing.
type Record struct {
	// Time is when the runtime recorded the line; zero when the line did
	// not say (a docker line without "time").
	Time time.Time
	// Stream is the stream the line was written to.
	Stream Stream
	// Partial reports a line the runtime split: the message continues in
	// the next line of the same stream.
	Partial bool
	// Msg is the message without the runtime's framing and without the
	// newline. It aliases the line or the Record's buffer.
	Msg []byte

	buf []byte
}

// ParseCRI decodes a line of the CRI log format that containerd and CRI-O
// write under /var/log/pods: "<RFC 3339 time> <stdout|stderr> <tag>
// <message>", where the first ':'-separated element of the tag is P for a
// partial line (continued in the next one) or F for a full one.
func ParseCRI(r *Record, line []byte) error {
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return ErrMalformedCRI
	}
	ts, err := ParseTimestamp(line[:sp])
	if err != nil {
		return ErrMalformedCRI
	}
	rest := line[sp+1:]
	var stream Stream
	switch {
	case len(rest) >= 7 && string(rest[:7]) == "stdout ":
		stream = StreamStdout
	case len(rest) >= 7 && string(rest[:7]) == "stderr ":
		stream = StreamStderr
	default:
		return ErrMalformedCRI
	}
	rest = rest[7:]
	tag, msg := rest, []byte(nil)
	if sp = bytes.IndexByte(rest, ' '); sp >= 0 {
		tag, msg = rest[:sp], rest[sp+1:]
	}
	if c := bytes.IndexByte(tag, ':'); c >= 0 {
		tag = tag[:c]
	}
	if len(tag) != 1 || (tag[0] != 'P' && tag[0] != 'F') {
		return ErrMalformedCRI
	}
	r.Time, r.Stream, r.Partial, r.Msg = ts, stream, tag[0] == 'P', msg
	return nil
}

// ParseDocker decodes a line of docker's json-file log driver:
// {"log":"message\n","stream":"stdout","time":"<RFC 3339>"}. Docker splits
// messages longer than 16 KiB into lines whose "log" does not end in a
// newline; those are reported as Partial. Other members are ignored.
func ParseDocker(r *Record, line []byte) error {
	it := objectIter{buf: r.buf[:0]}
	err := parseDocker(r, &it, line)
	r.buf = it.buf // keep what the buffer grew to
	return err
}

func parseDocker(r *Record, it *objectIter, line []byte) error {
	if !it.reset(line) {
		return ErrMalformedDocker
	}
	var (
		msg     []byte
		haveLog bool
		stream  Stream
		ts      time.Time
	)
	for {
		key, val, kind, ok := it.next()
		if !ok {
			break
		}
		switch string(key) {
		case "log":
			if kind != kindString {
				return ErrMalformedDocker
			}
			msg, haveLog = val, true
		case "stream":
			switch string(val) {
			case "stdout":
				stream = StreamStdout
			case "stderr":
				stream = StreamStderr
			}
		case "time":
			t, err := ParseTimestamp(val)
			if err != nil {
				return ErrMalformedDocker
			}
			ts = t
		}
	}
	if it.err != nil || !haveLog {
		return ErrMalformedDocker
	}
	partial := true
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg, partial = msg[:n-1], false
	}
	r.Time, r.Stream, r.Partial, r.Msg = ts, stream, partial, msg
	return nil
}
