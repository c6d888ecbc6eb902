package traceql

import (
	"fmt"
	"strings"
)

// ScopeIntrinsic is traces.Condition's Scope of an intrinsic.
const ScopeIntrinsic = "intrinsic"

// fieldType says which values and operators an intrinsic takes.
type fieldType uint8

const (
	typeAttribute fieldType = iota // any value: the stored type decides
	typeString
	typeStatus
	typeKind
	typeDuration
)

// intrinsics maps each supported intrinsic, under its names, to the name
// traces.Condition uses and its type.
var intrinsics = map[string]struct {
	name string
	typ  fieldType
}{
	"name":              {"name", typeString},
	"span:name":         {"name", typeString},
	"status":            {"status", typeStatus},
	"span:status":       {"status", typeStatus},
	"kind":              {"kind", typeKind},
	"span:kind":         {"kind", typeKind},
	"duration":          {"duration", typeDuration},
	"span:duration":     {"duration", typeDuration},
	"rootName":          {"rootName", typeString},
	"trace:rootName":    {"rootName", typeString},
	"rootServiceName":   {"rootServiceName", typeString},
	"trace:rootService": {"rootServiceName", typeString},
	"traceDuration":     {"traceDuration", typeDuration},
	"trace:duration":    {"traceDuration", typeDuration},
}

// unsupportedIntrinsics are valid TraceQL intrinsics Pharos does not search
// by.
var unsupportedIntrinsics = map[string]bool{
	"statusMessage": true, "span:statusMessage": true, "childCount": true, "span:childCount": true,
	"parent": true, "span:parentID": true, "span:id": true, "trace:id": true,
	"nestedSetLeft": true, "nestedSetRight": true, "nestedSetParent": true,
	"event:name": true, "event:timeSinceStart": true, "link:traceID": true, "link:spanID": true,
	"instrumentation:name": true, "instrumentation:version": true,
}

// intrinsicNames are the intrinsics a search takes, in traces.Condition's
// names, sorted.
var intrinsicNames = []string{"duration", "kind", "name", "rootName", "rootServiceName", "status", "traceDuration"}

// Intrinsics returns the names of the intrinsics Pharos searches by, sorted.
func Intrinsics() []string { return append([]string(nil), intrinsicNames...) }

// statusValues and kindValues are the keywords of status and kind.
var (
	statusValues = map[string]bool{"error": true, "ok": true, "unset": true}
	kindValues   = map[string]bool{
		"server": true, "client": true, "producer": true, "consumer": true, "internal": true, "unspecified": true,
	}
)

// aggregates and metricsFunctions are pipeline functions, named in errors.
var (
	aggregates       = map[string]bool{"count": true, "avg": true, "min": true, "max": true, "sum": true}
	metricsFunctions = map[string]bool{
		"rate": true, "count_over_time": true, "min_over_time": true, "max_over_time": true,
		"avg_over_time": true, "sum_over_time": true, "quantile_over_time": true,
		"histogram_over_time": true, "compare": true, "topk": true, "bottomk": true,
	}
)

// ParseField parses a tag as the tag APIs name it — an attribute
// (resource.x, span.x, .x, span."x y") or an intrinsic (name, status,
// span:name) — into traces.Condition's Scope and Name. A scoped intrinsic
// comes back under its plain name.
func ParseField(s string) (scope, name string, err error) {
	l := lexer{q: s}
	tok, err := l.next()
	if err != nil {
		return "", "", err
	}
	if end, err := l.next(); err != nil || end.kind != tEOF {
		return "", "", fmt.Errorf("tag name is not valid intrinsic or scoped attribute: %s", s)
	}
	switch tok.kind {
	case tAttr:
		switch tok.scope {
		case "span", "resource", "":
			return tok.scope, tok.text, nil
		}
		return "", "", &UnsupportedError{Pos: tok.pos, Feature: tok.scope + ". attributes"}
	case tIdent:
		if in, ok := intrinsics[tok.text]; ok {
			return ScopeIntrinsic, in.name, nil
		}
		if unsupportedIntrinsics[tok.text] {
			return "", "", &UnsupportedError{Pos: tok.pos, Feature: "intrinsic " + tok.text}
		}
	}
	return "", "", fmt.Errorf("tag name is not valid intrinsic or scoped attribute: %s", s)
}

// FieldString is the canonical TraceQL of a field: the intrinsic's name,
// or the attribute with its scope, quoted when the name needs it.
func FieldString(scope, name string) string {
	var b strings.Builder
	b.Grow(len(scope) + len(name) + 3)
	appendField(&b, scope, name)
	return b.String()
}

func appendField(b *strings.Builder, scope, name string) {
	if scope == ScopeIntrinsic {
		b.WriteString(name)
		return
	}
	b.WriteString(scope)
	b.WriteByte('.')
	if needsQuoting(name) {
		writeQuoted(b, name)
		return
	}
	b.WriteString(name)
}

// needsQuoting reports whether an attribute name must be quoted to lex
// back as one name.
func needsQuoting(name string) bool {
	if name == "" {
		return true
	}
	for _, r := range name {
		if !isAttributeRune(r) {
			return true
		}
	}
	return false
}
