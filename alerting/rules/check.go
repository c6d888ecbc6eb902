package rules

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// Exit codes of RunCheck, those of promtool check rules.
const (
	CheckOK     = 0 // every file is valid
	CheckFailed = 1 // a file has errors or cannot be read
	CheckUsage  = 2 // no file given
)

// nameValidation is how metric and label names in rules are validated:
// UTF-8, as the Prometheus rules manager does by default.
const nameValidation = model.UTF8Validation

// newParser returns the PromQL parser used for rule expressions, by Check
// and by the Manager alike, so that what Check accepts the Manager loads.
func newParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// discardLogger takes rulefmt's warning about multi-document files: Check
// reports errors, and the Manager logs nothing per line of input.
var discardLogger = slog.New(slog.DiscardHandler)

// Check parses and validates rule files the way the Manager loads them:
// YAML structure (unknown fields are errors), every expression with the
// PromQL parser, every label and annotation template of alerting rules.
// It returns every error found; each names its file and, when it concerns
// a place in the file, the line and column. Check reads only the files
// named: it does not expand globs.
func Check(files ...string) []error { return checkFiles(newParser(), files) }

// CheckLogQL is Check for log rule files (Config.LogFiles): every
// expression must be a LogQL metric query that Pharos evaluates; a valid
// LogQL feature it does not evaluate is an error that names the feature.
func CheckLogQL(files ...string) []error { return checkFiles(newLogParser(), files) }

func checkFiles(p parser.Parser, files []string) []error {
	var errs []error
	for _, f := range files {
		_, _, fileErrs := checkFile(f, p)
		errs = append(errs, fileErrs...)
	}
	return errs
}

// checkFile parses one file, returning its groups, the number of rules and
// every error.
func checkFile(file string, p parser.Parser) (*rulefmt.RuleGroups, int, []error) {
	content, err := os.ReadFile(file)
	if err != nil {
		return nil, 0, []error{fmt.Errorf("%s: %w", file, err)}
	}
	return checkContent(file, content, p)
}

// checkContent parses a rule file's content. rulefmt reports most errors
// with their line and column; those it reports without, or at 0:0 (group
// errors, missing fields, templates, label names and values, durations),
// get the position of what they are about, found in the YAML tree. The
// same error from rulefmt's two passes over the YAML is reported once.
// Validation errors (which come only when decoding succeeded) are all
// kept: "group repeated" comes once per repetition.
func checkContent(file string, content []byte, p parser.Parser) (*rulefmt.RuleGroups, int, []error) {
	rgs, errs := rulefmt.Parse(content, false, nameValidation, p, discardLogger)
	if len(errs) > 0 {
		var (
			idx  *nodeIndex
			out  = make([]error, 0, len(errs))
			seen = make(map[string]struct{}, len(errs))
		)
		for _, e := range errs {
			msg := stripZeroPosition(e.Error())
			if _, dup := seen[msg]; dup && rgs == nil {
				continue // both YAML passes failed alike
			}
			seen[msg] = struct{}{}
			if hasPosition(msg) {
				out = append(out, &PositionError{File: file, Msg: msg, Err: e})
				continue
			}
			if idx == nil {
				idx = indexNodes(content)
			}
			pe := &PositionError{File: file, Msg: msg, Err: e}
			pe.Line, pe.Column = idx.locate(e, msg)
			out = append(out, pe)
		}
		return nil, 0, out
	}
	n := 0
	for _, g := range rgs.Groups {
		n += len(g.Rules)
	}
	return rgs, n, nil
}

// PositionError is an error in a rule file: "file: line:column: message",
// or "file: message" when it concerns no place in the file.
type PositionError struct {
	File string
	// Line and Column are 0 when the message holds its own position
	// (rulefmt's "line:column:", the YAML decoder's "line N:") or when
	// it concerns no place in the file.
	Line, Column int
	// Msg is the message, without the 0:0 positions rulefmt gives what
	// it cannot place.
	Msg string
	// Err is rulefmt's error.
	Err error
}

// Error formats the error as rulefmt and promtool do.
func (e *PositionError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: %d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Unwrap returns rulefmt's error.
func (e *PositionError) Unwrap() error { return e.Err }

// positionPrefix matches the "line:column: " rulefmt starts positioned
// messages with; yamlLine matches the YAML decoder's "line N:".
var (
	positionPrefix = regexp.MustCompile(`^\d+:\d+: `)
	zeroPosition   = regexp.MustCompile(`^(0:0: )+`)
	yamlLine       = regexp.MustCompile(`\bline \d+:`)
)

func hasPosition(msg string) bool {
	return positionPrefix.MatchString(msg) || yamlLine.MatchString(msg)
}

// stripZeroPosition removes the 0:0 positions rulefmt prints for nodes
// absent from the file (a missing field) or that its decoding leaves
// empty (groups).
func stripZeroPosition(msg string) string { return zeroPosition.ReplaceAllString(msg, "") }

// nodeIndex is the YAML tree of a rule file, kept to place errors.
type nodeIndex struct {
	doc    *yaml.Node
	groups []*yaml.Node // mapping nodes of groups[]
	// used counts the group errors placed so far, by message: the n-th
	// "repeated" error about a name is about its n+1-th group.
	used map[string]int
	// current is, by group name, which of the groups of that name (from
	// 0) rulefmt reports on. It validates group after group, a group's
	// own errors before its rules', so a "repeated" or "empty" error
	// moves on to the next group of that name.
	current map[string]int
}

func indexNodes(content []byte) *nodeIndex {
	x := &nodeIndex{used: map[string]int{}, current: map[string]int{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(content, &doc); err != nil || len(doc.Content) == 0 {
		return x
	}
	x.doc = doc.Content[0]
	if seq := mappingValue(x.doc, "groups"); seq != nil && seq.Kind == yaml.SequenceNode {
		x.groups = seq.Content
	}
	return x
}

// mappingValue returns the value node of key in mapping node m, or nil.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// The messages of the errors rulefmt reports without a position, and what
// they are about.
var (
	aboutLabelTemplate      = regexp.MustCompile(`^label "((?:[^"\\]|\\.)*)": `)
	aboutAnnotationTemplate = regexp.MustCompile(`^annotation "((?:[^"\\]|\\.)*)": `)
	aboutLabelName          = "invalid label name: "
	aboutLabelValue         = "invalid label value: "
	aboutAnnotationName     = "invalid annotation name: "
)

// Group errors of rulefmt, which carry no usable position.
var (
	groupRepeated = regexp.MustCompile(`^groupname: "((?:[^"\\]|\\.)*)" is repeated in the same file`)
	groupEmpty    = "Groupname must not be empty"
	quoted        = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
)

// locate finds the position of an error that has none, or returns 0, 0.
func (x *nodeIndex) locate(err error, msg string) (line, col int) {
	at := func(n *yaml.Node) (int, int) {
		if n == nil {
			return 0, 0
		}
		return n.Line, n.Column
	}
	var re *rulefmt.Error
	if errors.As(err, &re) {
		rule := x.rule(re.Group, re.Rule-1)
		if rule == nil {
			return 0, 0
		}
		if inner := re.Err.Unwrap(); inner != nil {
			if n := aboutNode(rule, inner.Error()); n != nil {
				return at(n)
			}
		}
		return at(rule)
	}
	if s := groupRepeated.FindStringSubmatch(msg); s != nil {
		x.used[msg]++
		name := unquote(s[1])
		x.current[name] = x.used[msg]
		return at(x.group(name, x.current[name]))
	}
	if msg == groupEmpty {
		x.used[msg]++
		x.current[""] = x.used[msg] - 1
		return at(x.group("", x.current[""]))
	}
	// Errors about a group's labels carry neither group nor rule.
	for _, g := range x.groups {
		if n := aboutNode(g, msg); n != nil {
			return at(n)
		}
	}
	// Last, a value the message quotes (a bad duration).
	for _, q := range quoted.FindAllStringSubmatch(msg, -1) {
		if n := findScalar(x.doc, unquote(q[1])); n != nil {
			return at(n)
		}
	}
	return 0, 0
}

// group returns the n-th (from 0) group named name; a group without a
// name is named "".
func (x *nodeIndex) group(name string, n int) *yaml.Node {
	for _, g := range x.groups {
		gn := ""
		if v := mappingValue(g, "name"); v != nil {
			gn = v.Value
		}
		if gn != name {
			continue
		}
		if n == 0 {
			return g
		}
		n--
	}
	return nil
}

// findScalar returns the first scalar value node holding s, depth first.
func findScalar(n *yaml.Node, s string) *yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode && n.Value == s {
		return n
	}
	for i, c := range n.Content {
		if n.Kind == yaml.MappingNode && i%2 == 0 {
			continue // keys
		}
		if f := findScalar(c, s); f != nil {
			return f
		}
	}
	return nil
}

// rule returns the mapping node of rule i of the group named name that
// rulefmt is reporting on (see nodeIndex.current).
func (x *nodeIndex) rule(name string, i int) *yaml.Node {
	rules := mappingValue(x.group(name, x.current[name]), "rules")
	if rules != nil && rules.Kind == yaml.SequenceNode && i >= 0 && i < len(rules.Content) {
		return rules.Content[i]
	}
	return nil
}

// aboutNode returns the node in m's labels or annotations that msg is
// about, or nil.
func aboutNode(m *yaml.Node, msg string) *yaml.Node {
	if s := aboutLabelTemplate.FindStringSubmatch(msg); s != nil {
		return keyIn(m, "labels", unquote(s[1]), false)
	}
	if s := aboutAnnotationTemplate.FindStringSubmatch(msg); s != nil {
		return keyIn(m, "annotations", unquote(s[1]), false)
	}
	if k, ok := strings.CutPrefix(msg, aboutLabelName); ok {
		return keyIn(m, "labels", k, false)
	}
	if v, ok := strings.CutPrefix(msg, aboutLabelValue); ok {
		return keyIn(m, "labels", v, true)
	}
	if k, ok := strings.CutPrefix(msg, aboutAnnotationName); ok {
		return keyIn(m, "annotations", k, false)
	}
	return nil
}

// keyIn returns the key node named s (or, with byValue, the first value
// node holding s) of the mapping under field in m.
func keyIn(m *yaml.Node, field, s string, byValue bool) *yaml.Node {
	mm := mappingValue(m, field)
	if mm == nil || mm.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(mm.Content); i += 2 {
		n := mm.Content[i]
		if byValue {
			n = mm.Content[i+1]
		}
		if n.Value == s {
			return n
		}
	}
	return nil
}

func unquote(s string) string {
	if u, err := strconv.Unquote(`"` + s + `"`); err == nil {
		return u
	}
	return s
}

// RunCheck is `pharos rules check [-logql] FILE…`: it checks each file
// and prints, as promtool check rules does, "Checking FILE" and
// "  SUCCESS: N rules found" on stdout, or "  FAILED:" and the errors on
// stderr. With -logql (or --logql), the files are log rule files
// (-rules.log-files) and their expressions LogQL. It returns the process's
// exit code: CheckOK, CheckFailed or CheckUsage (no file, an unknown
// flag).
func RunCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pharos rules check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logQL := fs.Bool("logql", false, "")
	usage := func() {
		fmt.Fprintln(stderr, "usage: pharos rules check FILE...")
		fmt.Fprintln(stderr, "Checks rule files in Prometheus's format; exits 1 if any has errors.")
		fmt.Fprintln(stderr, "With -logql (before the files), they are log rule files (-rules.log-files): expressions are LogQL metric queries.")
	}
	fs.Usage = usage
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return CheckOK
		}
		return CheckUsage
	}
	args = fs.Args()
	if len(args) == 0 {
		usage()
		return CheckUsage
	}
	code := CheckOK
	p := newParser()
	if *logQL {
		p = newLogParser()
	}
	for _, f := range args {
		fmt.Fprintln(stdout, "Checking", f)
		_, n, errs := checkFile(f, p)
		if len(errs) > 0 {
			code = CheckFailed
			fmt.Fprintln(stderr, "  FAILED:")
			for _, e := range errs {
				fmt.Fprintln(stderr, e.Error())
			}
		} else {
			fmt.Fprintf(stdout, "  SUCCESS: %d rules found\n", n)
		}
		fmt.Fprintln(stdout)
	}
	return code
}

// expandGlobs returns the files the globs of field match, each once, in
// the order of the globs and, within one, sorted (filepath.Glob sorts).
// The paths are kept as matched: they are part of each group's key, which
// every aggregator must compute alike from the same configuration.
func expandGlobs(field string, globs []string) ([]string, error) {
	var files []string
	seen := map[string]struct{}{}
	for _, pat := range globs {
		fs, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", field, pat, err)
		}
		for _, f := range fs {
			if _, dup := seen[f]; !dup {
				seen[f] = struct{}{}
				files = append(files, f)
			}
		}
	}
	return files, nil
}
