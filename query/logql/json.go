package logql

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The JSON code here scans log lines in place: values without escapes are
// substrings of the line, label names are interned, so `| json` allocates
// only for escaped strings and new label names.

// maxJSONDepth is how deep `| json` flattens; deeper objects are skipped,
// which also bounds the recursion on hostile lines.
const maxJSONDepth = 64

var (
	errJSONEnd    = errors.New("unexpected end of JSON input")
	errJSONObject = errors.New("value is not a JSON object")
)

func jsonSyntaxError(s string, pos int) error {
	if pos >= len(s) {
		return errJSONEnd
	}
	r, _ := utf8.DecodeRuneInString(s[pos:])
	return fmt.Errorf("invalid character %s at offset %d", strconv.QuoteRune(r), pos)
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipJSONSpace(s string, pos int) int {
	for pos < len(s) && isJSONSpace(s[pos]) {
		pos++
	}
	return pos
}

// scanJSONString reads the string starting at s[pos] == '"'; it returns the
// raw content between the quotes, whether it holds escapes, and the
// position after the closing quote.
func scanJSONString(s string, pos int) (raw string, escaped bool, end int, err error) {
	start := pos + 1
	for i := start; i < len(s); i++ {
		switch s[i] {
		case '"':
			return s[start:i], escaped, i + 1, nil
		case '\\':
			escaped = true
			i++
		}
	}
	return "", false, len(s), errJSONEnd
}

// scanJSONScalar reads a number or true/false/null at s[pos].
func scanJSONScalar(s string, pos int) (raw string, end int, err error) {
	i := pos
	for i < len(s) {
		c := s[i]
		if c == ',' || c == '}' || c == ']' || isJSONSpace(c) {
			break
		}
		i++
	}
	raw = s[pos:i]
	switch raw {
	case "true", "false", "null":
		return raw, i, nil
	}
	if !isJSONNumber(raw) {
		return "", i, jsonSyntaxError(s, pos)
	}
	return raw, i, nil
}

func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := 0
	for i < len(s) && isDigit(s[i]) {
		i++
		digits++
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		frac := 0
		for i < len(s) && isDigit(s[i]) {
			i++
			frac++
		}
		if frac == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && isDigit(s[i]) {
			i++
			exp++
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}

// skipJSONValue skips the value at s[pos] and returns the position after it.
// Containers are skipped by bracket counting outside strings, without
// recursion.
func skipJSONValue(s string, pos int) (int, error) {
	if pos >= len(s) {
		return pos, errJSONEnd
	}
	switch s[pos] {
	case '"':
		_, _, end, err := scanJSONString(s, pos)
		return end, err
	case '{', '[':
		depth := 0
		for i := pos; i < len(s); i++ {
			switch s[i] {
			case '"':
				_, _, end, err := scanJSONString(s, i)
				if err != nil {
					return end, err
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
		}
		return len(s), errJSONEnd
	}
	_, end, err := scanJSONScalar(s, pos)
	return end, err
}

// scanJSONKey reads the key of an object member at s[pos] and the ':' after
// it; end is where the member's value starts.
func scanJSONKey(s string, pos int) (raw string, escaped bool, end int, err error) {
	if pos >= len(s) || s[pos] != '"' {
		return "", false, pos, jsonSyntaxError(s, pos)
	}
	raw, escaped, end, err = scanJSONString(s, pos)
	if err != nil {
		return "", false, end, err
	}
	pos = skipJSONSpace(s, end)
	if pos >= len(s) || s[pos] != ':' {
		return "", false, pos, jsonSyntaxError(s, pos)
	}
	return raw, escaped, skipJSONSpace(s, pos+1), nil
}

// nextJSONItem moves past the ',' after a member or element to the next
// one (more is true), or to closing, the bracket that ends its container.
func nextJSONItem(s string, pos int, closing byte) (next int, more bool, err error) {
	pos = skipJSONSpace(s, pos)
	if pos >= len(s) {
		return pos, false, errJSONEnd
	}
	switch s[pos] {
	case ',':
		return skipJSONSpace(s, pos+1), true, nil
	case closing:
		return pos, false, nil
	}
	return pos, false, jsonSyntaxError(s, pos)
}

// jsonStringValue returns a JSON string's value, "" when it is not valid
// UTF-8 (Prometheus rejects the replacement rune, so Loki drops it too).
func jsonStringValue(raw string, escaped bool) string {
	v := raw
	if escaped {
		var ok bool
		v, ok = unescapeJSON(raw)
		if !ok {
			return ""
		}
	}
	if !utf8.ValidString(v) || strings.ContainsRune(v, utf8.RuneError) {
		return ""
	}
	return v
}

// unescapeJSON decodes the escapes of a JSON string's content.
func unescapeJSON(raw string) (string, bool) {
	var b strings.Builder
	b.Grow(len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(raw) {
			return "", false
		}
		switch raw[i] {
		case '"', '\\', '/':
			b.WriteByte(raw[i])
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := hex4(raw, i+1)
			if !ok {
				return "", false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if i+2 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					if r2, ok := hex4(raw, i+3); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							i += 6
							b.WriteRune(dec)
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			b.WriteRune(r)
		default:
			return "", false
		}
	}
	return b.String(), true
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	v, err := strconv.ParseUint(s[i:i+4], 16, 32)
	if err != nil {
		return 0, false
	}
	return rune(v), true
}

// appendSanitized appends key with every byte that is not valid in a label
// name replaced by '_', and a leading '_' when the name would start with a
// digit: Loki's sanitizeLabelKey.
func appendSanitized(dst []byte, key string) []byte {
	key = strings.TrimSpace(key)
	if key == "" {
		return dst
	}
	if len(dst) == 0 && isDigit(key[0]) {
		dst = append(dst, '_')
	}
	for _, r := range key {
		if r < utf8.RuneSelf && isIdentChar(byte(r)) {
			dst = append(dst, byte(r))
		} else {
			dst = append(dst, '_')
		}
	}
	return dst
}

func sanitizeLabelKey(key string) string {
	if isLabelName(key) {
		return key
	}
	return string(appendSanitized(nil, key))
}

// jsonPathElem is one step of a JSON path: an object key or an array index.
type jsonPathElem struct {
	key   string
	index int
	isIdx bool
}

// parseJSONPath parses Loki's JSON expressions: a.b, a[0], a["b c"], ["x"].
func parseJSONPath(s string) ([]jsonPathElem, error) {
	var out []jsonPathElem
	i := 0
	if s == "" {
		return nil, errors.New("empty expression")
	}
	for i < len(s) {
		switch c := s[i]; {
		case c == '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return nil, errors.New("unterminated [")
			}
			inner := strings.TrimSpace(s[i+1 : i+end])
			if strings.HasPrefix(inner, `"`) {
				k, err := strconv.Unquote(inner)
				if err != nil {
					return nil, fmt.Errorf("invalid key %s", inner)
				}
				out = append(out, jsonPathElem{key: k})
			} else {
				n, err := strconv.Atoi(inner)
				if err != nil || n < 0 {
					return nil, fmt.Errorf("invalid index %q", inner)
				}
				out = append(out, jsonPathElem{index: n, isIdx: true})
			}
			i += end + 1
		case c == '.':
			if i == 0 || i+1 >= len(s) || s[i+1] == '.' || s[i+1] == '[' {
				return nil, errors.New("unexpected .")
			}
			i++
		default:
			j := i
			for j < len(s) && s[j] != '.' && s[j] != '[' {
				if s[j] == ']' || s[j] == '"' || s[j] == ' ' {
					return nil, fmt.Errorf("unexpected %q", s[j])
				}
				j++
			}
			if i > 0 && s[i-1] != '.' {
				return nil, fmt.Errorf("unexpected %q", s[i:j])
			}
			out = append(out, jsonPathElem{key: s[i:j]})
			i = j
		}
	}
	return out, nil
}

// jsonExtract returns the value at path in the JSON document s: a string's
// value, a number's or boolean's text, "" for null, and the raw text of an
// object or array. found is false when the path does not exist.
func jsonExtract(s string, path []jsonPathElem) (val string, found bool, err error) {
	pos := skipJSONSpace(s, 0)
	for _, el := range path {
		if pos >= len(s) {
			return "", false, errJSONEnd
		}
		if el.isIdx {
			if s[pos] != '[' {
				return "", false, nil
			}
			pos, found, err = seekJSONIndex(s, pos, el.index)
		} else {
			if s[pos] != '{' {
				return "", false, nil
			}
			pos, found, err = seekJSONKey(s, pos, el.key)
		}
		if err != nil || !found {
			return "", false, err
		}
	}
	if pos >= len(s) {
		return "", false, errJSONEnd
	}
	switch s[pos] {
	case '"':
		raw, esc, _, err := scanJSONString(s, pos)
		if err != nil {
			return "", false, err
		}
		return jsonStringValue(raw, esc), true, nil
	case '{', '[':
		end, err := skipJSONValue(s, pos)
		if err != nil {
			return "", false, err
		}
		return s[pos:end], true, nil
	}
	raw, _, err := scanJSONScalar(s, pos)
	if err != nil {
		return "", false, err
	}
	if raw == "null" {
		raw = ""
	}
	return raw, true, nil
}

// seekJSONKey moves from the '{' at pos to the value of key.
func seekJSONKey(s string, pos int, key string) (int, bool, error) {
	pos = skipJSONSpace(s, pos+1)
	if pos < len(s) && s[pos] == '}' {
		return pos, false, nil
	}
	for {
		raw, esc, valuePos, err := scanJSONKey(s, pos)
		if err != nil {
			return valuePos, false, err
		}
		pos = valuePos
		k := raw
		if esc {
			k, _ = unescapeJSON(raw)
		}
		if k == key {
			return pos, true, nil
		}
		if pos, err = skipJSONValue(s, pos); err != nil {
			return pos, false, err
		}
		var more bool
		if pos, more, err = nextJSONItem(s, pos, '}'); err != nil || !more {
			return pos, false, err
		}
	}
}

// seekJSONIndex moves from the '[' at pos to element idx.
func seekJSONIndex(s string, pos int, idx int) (int, bool, error) {
	pos = skipJSONSpace(s, pos+1)
	if pos < len(s) && s[pos] == ']' {
		return pos, false, nil
	}
	for i := 0; ; i++ {
		if i == idx {
			return pos, true, nil
		}
		var err error
		if pos, err = skipJSONValue(s, pos); err != nil {
			return pos, false, err
		}
		var more bool
		if pos, more, err = nextJSONItem(s, pos, ']'); err != nil || !more {
			return pos, false, err
		}
	}
}

// jsonFlattener is the state of `| json` without parameters. One instance
// serves one query (it is not safe for concurrent use).
type jsonFlattener struct {
	buf   []byte
	names map[string]string
}

// maxInternedNames bounds the label-name cache of a parser stage so that
// lines with random keys cannot grow it without limit.
const maxInternedNames = 4096

func (j *jsonFlattener) intern(b []byte) string {
	if n, ok := j.names[string(b)]; ok {
		return n
	}
	n := string(b)
	if j.names == nil {
		j.names = make(map[string]string)
	}
	if len(j.names) < maxInternedNames {
		j.names[n] = n
	}
	return n
}

// flatten sets a label for every string, number and boolean in the object
// line holds, naming nested fields parent_child; arrays and nulls are
// skipped, as in Loki.
func (j *jsonFlattener) flatten(line string, lb *labelsBuilder) error {
	pos := skipJSONSpace(line, 0)
	if pos >= len(line) || line[pos] != '{' {
		return errJSONObject
	}
	j.buf = j.buf[:0]
	_, err := j.object(line, pos, 0, lb)
	return err
}

func (j *jsonFlattener) object(s string, pos, depth int, lb *labelsBuilder) (int, error) {
	prefixLen := len(j.buf)
	pos = skipJSONSpace(s, pos+1)
	if pos < len(s) && s[pos] == '}' {
		return pos + 1, nil
	}
	for {
		key, _, valuePos, err := scanJSONKey(s, pos)
		if err != nil {
			return valuePos, err
		}
		pos = valuePos
		if pos >= len(s) {
			return pos, errJSONEnd
		}
		j.buf = j.buf[:prefixLen]
		if prefixLen > 0 {
			j.buf = append(j.buf, '_')
		}
		j.buf = appendSanitized(j.buf, key)
		switch c := s[pos]; c {
		case '"':
			raw, esc, end, err := scanJSONString(s, pos)
			if err != nil {
				return end, err
			}
			j.set(lb, jsonStringValue(raw, esc))
			pos = end
		case '{':
			if depth+1 >= maxJSONDepth || len(j.buf) == prefixLen {
				pos, err = skipJSONValue(s, pos)
			} else {
				pos, err = j.object(s, pos, depth+1, lb)
			}
			if err != nil {
				return pos, err
			}
		case '[':
			if pos, err = skipJSONValue(s, pos); err != nil {
				return pos, err
			}
		default:
			raw, end, err := scanJSONScalar(s, pos)
			if err != nil {
				return end, err
			}
			if raw != "null" {
				j.set(lb, raw)
			}
			pos = end
		}
		j.buf = j.buf[:prefixLen]
		var more bool
		if pos, more, err = nextJSONItem(s, pos, '}'); err != nil {
			return pos, err
		}
		if !more {
			return pos + 1, nil
		}
	}
}

func (j *jsonFlattener) set(lb *labelsBuilder, value string) {
	if len(j.buf) == 0 {
		return
	}
	name := j.intern(j.buf)
	lb.setParsed(name, value)
}
