package tail

import (
	"bytes"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/collector/tail/logparse"
)

// processChunk splits data, read from f at f.readOff, into lines and turns
// them into entries, until the batch is full. It returns how many bytes it
// consumed: up to the end of the last line processed, or all of data when
// it ends in an unfinished line (kept in f.carry).
func (t *Tailer) processChunk(f *tailedFile, data []byte) int {
	consumed := 0
	for consumed < len(data) && t.room() {
		rest := data[consumed:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			t.appendCarry(f, rest)
			consumed = len(data)
			break
		}
		line := rest[:i]
		start := f.lineOff
		consumed += i + 1
		// The line is consumed before it is handled, so that commit()
		// counts it as done unless it stays pending.
		f.lineOff = f.readOff + int64(consumed)
		trunc := false
		if len(f.carry) > 0 || f.discard {
			t.appendCarry(f, line)
			line, trunc = f.carry, f.lineTrunc
		}
		t.handleLine(f, line, start, trunc)
		if len(f.carry) > 0 || f.discard {
			f.resetCarry()
		}
		t.lines++
	}
	return consumed
}

// appendCarry adds the start of a line to f.carry, up to max_line_bytes.
func (t *Tailer) appendCarry(f *tailedFile, seg []byte) {
	if f.discard {
		return
	}
	if room := t.cfg.MaxLineBytes - len(f.carry); len(seg) > room {
		seg = seg[:room]
		f.discard, f.lineTrunc = true, true
	}
	f.carry = append(f.carry, seg...)
}

// handleLine decodes one physical line (starting at offset start) and joins
// partial container lines; complete messages go on to complete.
func (t *Tailer) handleLine(f *tailedFile, line []byte, start int64, trunc bool) {
	if len(line) > t.cfg.MaxLineBytes {
		line, trunc = line[:t.cfg.MaxLineBytes], true
	}
	ts, stream, partial, msg := t.now, logparse.StreamUnknown, false, line
	var err error
	switch t.format {
	case FormatCRI:
		err = logparse.ParseCRI(&t.rec, line)
	case FormatDocker:
		err = logparse.ParseDocker(&t.rec, line)
	case FormatAuto:
		if len(line) > 0 && line[0] == '{' {
			err = logparse.ParseDocker(&t.rec, line)
		} else {
			err = logparse.ParseCRI(&t.rec, line)
		}
	default:
		t.complete(f, stream, ts, msg, start, trunc)
		return
	}
	if err != nil {
		// Kept as it is; in auto mode that is how plain lines pass.
		if t.format != FormatAuto {
			t.formatErrors.Inc()
		}
		t.complete(f, stream, ts, msg, start, trunc)
		return
	}
	stream, partial, msg = t.rec.Stream, t.rec.Partial, t.rec.Msg
	if !t.rec.Time.IsZero() {
		ts = t.rec.Time
	}
	p := &f.streams[stream].part
	if !p.active && !partial {
		t.complete(f, stream, ts, msg, start, trunc)
		return
	}
	if !p.active {
		p.begin(start, ts, t.now)
	}
	p.add(msg, t.cfg.MaxLineBytes, t.now)
	p.trunc = p.trunc || trunc
	if partial {
		return
	}
	t.complete(f, stream, p.ts, p.buf, p.start, p.trunc)
	p.reset()
}

// complete takes a whole message (partial lines joined) and, with
// multi-line joining on, adds it to the entry being assembled.
func (t *Tailer) complete(f *tailedFile, stream logparse.Stream, ts time.Time, msg []byte, start int64, trunc bool) {
	if t.firstLine == nil {
		t.emit(f, stream, ts, msg, trunc)
		return
	}
	b := &f.streams[stream].block
	if b.active {
		if b.lines < t.cfg.Multiline.MaxLines && !t.firstLine.Match(msg) {
			b.buf, _ = appendCapped(b.buf, newline, t.cfg.MaxLineBytes)
			b.add(msg, t.cfg.MaxLineBytes, t.now)
			b.trunc = b.trunc || trunc
			return
		}
		t.emit(f, stream, b.ts, b.buf, b.trunc)
		b.reset()
	}
	b.begin(start, ts, t.now)
	b.add(msg, t.cfg.MaxLineBytes, t.now)
	b.trunc = b.trunc || trunc
}

var newline = []byte{'\n'}

// flushStream sends what a stream of f holds pending: a partial line as
// it is, and the multi-line entry.
func (t *Tailer) flushStream(f *tailedFile, stream logparse.Stream) {
	s := &f.streams[stream]
	if s.part.active {
		t.complete(f, stream, s.part.ts, s.part.buf, s.part.start, s.part.trunc)
		s.part.reset()
	}
	if s.block.active {
		t.emit(f, stream, s.block.ts, s.block.buf, s.block.trunc)
		s.block.reset()
	}
}

// flushExpired sends pending messages that have waited flush_timeout for
// their next line.
func (t *Tailer) flushExpired() {
	for _, f := range t.files {
		if f.state == stateDone {
			continue
		}
		flushed := false
		for i := range f.streams {
			if !t.room() {
				return
			}
			s := &f.streams[i]
			stream := logparse.Stream(i)
			if s.part.active && t.now.Sub(s.part.last) >= t.cfg.Multiline.FlushTimeout {
				t.complete(f, stream, s.part.ts, s.part.buf, s.part.start, s.part.trunc)
				s.part.reset()
				flushed = true
			}
			if s.block.active && t.now.Sub(s.block.last) >= t.cfg.Multiline.FlushTimeout {
				t.emit(f, stream, s.block.ts, s.block.buf, s.block.trunc)
				s.block.reset()
				flushed = true
			}
		}
		if flushed {
			t.cur.mark(f, f.commit())
		}
	}
}

// emit appends an entry to the current batch: the message copied into the
// batch's arena, made valid UTF-8 and cut to max_line_bytes.
func (t *Tailer) emit(f *tailedFile, stream logparse.Stream, ts time.Time, msg []byte, trunc bool) {
	b := t.cur
	start := len(b.arena)
	if utf8.Valid(msg) {
		b.arena = append(b.arena, msg...)
	} else {
		b.arena = appendValidUTF8(b.arena, msg)
		t.m.invalidUTF8.Inc()
	}
	if len(b.arena)-start > t.cfg.MaxLineBytes {
		// Replacement characters can lengthen a line: cut again, on a
		// character boundary.
		b.arena = b.arena[:start+len(cutUTF8(b.arena[start:], t.cfg.MaxLineBytes))]
		trunc = true
	}
	if trunc {
		t.m.linesTruncated.Inc()
	}
	end := len(b.arena)
	line := b.arena[start:end:end]
	lbls := f.labels[stream]
	var meta []Field
	if t.fparser != nil {
		lbls, meta = t.extract(b, f, stream, line)
	}
	if len(b.Entries) == 0 {
		b.first = t.now
	}
	b.Entries = append(b.Entries, Entry{Labels: lbls, Timestamp: ts, Line: line, Metadata: meta})
	b.bytes += len(line)
}

// maxLabelSets bounds the label sets cached per file for parsed fields
// made labels. Those must be low-cardinality; past the bound each entry
// builds its own, which costs allocations but stays correct.
const maxLabelSets = 256

// extract parses line's fields: the chosen ones become labels (on top of
// the file's for stream) or structured metadata, copied into the batch.
func (t *Tailer) extract(b *Batch, f *tailedFile, stream logparse.Stream, line []byte) (labels.Labels, []Field) {
	base := f.labels[stream]
	fs, err := t.fparser.Parse(line)
	if err != nil {
		t.fieldErrors.Inc()
		return base, nil
	}
	lbls := base
	if len(t.toLabel) > 0 {
		key := append(t.keyBuf[:0], byte(stream))
		for _, fl := range fs {
			if _, ok := t.toLabel[string(fl.Name)]; ok {
				key = append(append(append(append(key, fl.Name...), 0), fl.Value...), 0)
			}
		}
		t.keyBuf = key
		if len(key) > 1 {
			var ok bool
			if lbls, ok = f.labelSets[string(key)]; !ok {
				t.lb.Reset(base)
				for _, fl := range fs {
					if _, ok := t.toLabel[string(fl.Name)]; ok {
						t.lb.Set(string(fl.Name), string(fl.Value))
					}
				}
				lbls = t.lb.Labels()
				if f.labelSets == nil {
					f.labelSets = map[string]labels.Labels{}
				}
				if len(f.labelSets) < maxLabelSets {
					f.labelSets[string(key)] = lbls
				}
			}
		}
	}
	first := len(b.fields)
	for _, fl := range fs {
		if _, ok := t.toLabel[string(fl.Name)]; ok {
			continue
		}
		if _, ok := t.toMeta[string(fl.Name)]; !ok && !t.metaAll {
			continue
		}
		ns := len(b.arena)
		b.arena = append(b.arena, fl.Name...)
		vs := len(b.arena)
		b.arena = append(b.arena, fl.Value...)
		ve := len(b.arena)
		b.fields = append(b.fields, Field{Name: b.arena[ns:vs:vs], Value: b.arena[vs:ve:ve]})
	}
	if len(b.fields) == first {
		return lbls, nil
	}
	return lbls, b.fields[first:len(b.fields):len(b.fields)]
}

// appendCapped appends src to dst up to limit bytes in all, reporting
// whether it had to cut.
func appendCapped(dst, src []byte, limit int) ([]byte, bool) {
	if room := limit - len(dst); len(src) > room {
		return append(dst, src[:max(room, 0)]...), true
	}
	return append(dst, src...), false
}

// appendValidUTF8 appends src with each byte that is not part of a valid
// UTF-8 sequence replaced by U+FFFD.
func appendValidUTF8(dst, src []byte) []byte {
	for len(src) > 0 {
		if src[0] < utf8.RuneSelf {
			dst = append(dst, src[0])
			src = src[1:]
			continue
		}
		r, size := utf8.DecodeRune(src)
		if r == utf8.RuneError && size == 1 {
			dst = utf8.AppendRune(dst, utf8.RuneError)
		} else {
			dst = append(dst, src[:size]...)
		}
		src = src[size:]
	}
	return dst
}

// cutUTF8 returns the longest prefix of b no longer than n that does not
// end inside a character.
func cutUTF8(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	i := n
	for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(b[i]) {
		i--
	}
	return b[:i]
}

// fileLabels returns the labels of a file's entries, by stream.
func (t *Tailer) fileLabels(path string) [3]labels.Labels {
	b := labels.NewBuilder(labels.EmptyLabels())
	b.Set("filename", path)
	if t.cfg.KubernetesLabels {
		if ns, pod, container, ok := podLabels(path); ok {
			b.Set("namespace", ns)
			b.Set("pod", pod)
			b.Set("container", container)
		}
	}
	for name, value := range t.cfg.StaticLabels {
		b.Set(name, value)
	}
	var out [3]labels.Labels
	out[logparse.StreamUnknown] = b.Labels()
	for _, s := range []logparse.Stream{logparse.StreamStdout, logparse.StreamStderr} {
		b.Set("stream", s.String())
		out[s] = b.Labels()
	}
	return out
}

// podLabels reads namespace, pod and container from a kubelet log path:
// .../pods/<namespace>_<pod>_<uid>/<container>/<n>.log. Namespaces and pod
// names are DNS names, so "_" separates them unambiguously.
func podLabels(path string) (ns, pod, container string, ok bool) {
	containerDir := filepath.Dir(path)
	podDir := filepath.Dir(containerDir)
	if filepath.Base(filepath.Dir(podDir)) != "pods" || !strings.HasSuffix(path, ".log") {
		return "", "", "", false
	}
	parts := strings.Split(filepath.Base(podDir), "_")
	container = filepath.Base(containerDir)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" || container == "" || container == "." {
		return "", "", "", false
	}
	return parts[0], parts[1], container, true
}
