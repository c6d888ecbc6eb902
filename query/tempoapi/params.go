package tempoapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pharos-obs/pharos/query/traceql"
	"github.com/pharos-obs/pharos/storage/traces"
)

// unixRange reads Tempo's optional start and end, in Unix seconds.
func unixRange(r *http.Request) (start, end time.Time, err error) {
	var s, e int64
	for _, p := range []struct {
		name string
		v    *int64
	}{{"start", &s}, {"end", &e}} {
		v := r.FormValue(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > 1<<33 {
			return start, end, badParam("invalid %s: want Unix seconds, got %q", p.name, v)
		}
		*p.v = n
	}
	if s != 0 && e != 0 && e <= s {
		return start, end, badParam("http parameter start must be before end. received start=%d end=%d", s, e)
	}
	if s != 0 {
		start = time.Unix(s, 0)
	}
	if e != 0 {
		end = time.Unix(e, 0)
	}
	return start, end, nil
}

// positive reads an optional positive integer no larger than max (0: no
// bound).
func positive(r *http.Request, name string, def, max int) (int, error) {
	v := r.FormValue(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, badParam("invalid %s: %q is not a number", name, v)
	}
	if n <= 0 {
		return 0, badParam("invalid %s: must be a positive number", name)
	}
	if max > 0 && n > max {
		return 0, badParam("invalid %s: %d exceeds the maximum of %d", name, n, max)
	}
	return n, nil
}

// durations reads minDuration and maxDuration as Go durations.
func durations(r *http.Request) (lo, hi time.Duration, err error) {
	for _, p := range []struct {
		name string
		v    *time.Duration
	}{{"minDuration", &lo}, {"maxDuration", &hi}} {
		v := r.FormValue(p.name)
		if v == "" {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, 0, badParam("invalid %s: %q is not a duration such as 100ms", p.name, v)
		}
		*p.v = d
	}
	if lo > 0 && hi > 0 && hi < lo {
		return 0, 0, badParam("invalid maxDuration: must be greater than minDuration")
	}
	return lo, hi, nil
}

// parseLogfmt splits Tempo's legacy tags parameter, logfmt key=value pairs
// whose values are bare or double-quoted with escapes, as go-logfmt does.
// A key without a value has the value "".
func parseLogfmt(s string) ([][2]string, error) {
	var pairs [][2]string
	i := 0
	for {
		for i < len(s) && s[i] <= ' ' {
			i++
		}
		if i >= len(s) {
			return pairs, nil
		}
		start := i
		for i < len(s) && s[i] > ' ' && s[i] != '=' && s[i] != '"' {
			i++
		}
		key := s[start:i]
		if key == "" {
			return nil, badParam("invalid tags: unexpected %q at %d", s[i], i)
		}
		if i >= len(s) || s[i] != '=' {
			if i < len(s) && s[i] == '"' {
				return nil, badParam("invalid tags: unexpected '\"' at %d", i)
			}
			pairs = append(pairs, [2]string{key, ""})
			continue
		}
		i++ // '='
		switch {
		case i < len(s) && s[i] == '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, badParam("invalid tags: unterminated quoted value of %s", key)
			}
			v, err := strconv.Unquote(s[i : j+1])
			if err != nil {
				return nil, badParam("invalid tags: bad quoted value of %s: %s", key, s[i:j+1])
			}
			pairs = append(pairs, [2]string{key, v})
			i = j + 1
		default:
			start := i
			for i < len(s) && s[i] > ' ' {
				if s[i] == '"' || s[i] == '=' {
					return nil, badParam("invalid tags: unexpected %q in the value of %s", s[i], key)
				}
				i++
			}
			pairs = append(pairs, [2]string{key, s[start:i]})
		}
	}
}

// legacyTags turns Tempo's legacy tag search into one group of conditions
// (all on one span), with Tempo's special tags: root.service.name,
// root.name, name, status.code, error=true and service.name (a resource
// attribute); other tags are attributes of either scope.
func legacyTags(s string) ([][]traces.Condition, error) {
	pairs, err := parseLogfmt(s)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var g []traces.Condition
	intrinsic := func(name, op, v string) traces.Condition {
		return traces.Condition{Scope: traceql.ScopeIntrinsic, Name: name, Op: op, Value: v}
	}
	for _, p := range pairs {
		k, v := p[0], p[1]
		if seen[k] {
			return nil, badParam("invalid tags: tag %s has been set twice", k)
		}
		seen[k] = true
		switch {
		case k == "root.service.name":
			g = append(g, intrinsic("rootServiceName", "=", v))
		case k == "root.name":
			g = append(g, intrinsic("rootName", "=", v))
		case k == "name":
			g = append(g, intrinsic("name", "=", v))
		case k == "status.code":
			code, ok := statusKeyword(v)
			if !ok {
				return nil, badParam("invalid tags: status.code must be error, ok or unset, got %q", v)
			}
			g = append(g, intrinsic("status", "=", code))
		case k == "error" && (v == "true" || v == "false"):
			op := "="
			if v == "false" {
				op = "!="
			}
			g = append(g, intrinsic("status", op, "error"))
		case k == "service.name":
			g = append(g, traces.Condition{Scope: "resource", Name: k, Op: "=", Value: v})
		default:
			g = append(g, traces.Condition{Name: k, Op: "=", Value: v})
		}
	}
	if len(g) == 0 {
		return nil, nil
	}
	return [][]traces.Condition{g}, nil
}

// statusKeyword reads a status as TraceQL, OTLP's enum or its number name
// it.
func statusKeyword(v string) (string, bool) {
	switch strings.ToLower(v) {
	case "error", "status_code_error", "2":
		return "error", true
	case "ok", "status_code_ok", "1":
		return "ok", true
	case "unset", "status_code_unset", "0":
		return "unset", true
	}
	return "", false
}
