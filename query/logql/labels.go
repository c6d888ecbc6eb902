package logql

import (
	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
)

const (
	errorLabel        = "__error__"
	errorDetailsLabel = "__error_details__"
	extractedSuffix   = "_extracted"
)

// Error values of the __error__ label, as in Loki.
const (
	ErrJSON             = "JSONParserErr"
	ErrLogfmt           = "LogfmtParserErr"
	ErrLabelFilter      = "LabelFilterErr"
	ErrTemplateFormat   = "TemplateFormatErr"
	ErrSampleExtraction = "SampleExtractionErr"
)

// labelCat is where a label comes from; Loki's categorize-labels encoding
// reports structured metadata and parsed labels apart from stream labels.
type labelCat uint8

const (
	catStream labelCat = iota
	catMeta
	catParsed
)

type catLabel struct {
	name, value string
	cat         labelCat
}

// labelsBuilder holds the labels of the entry a pipeline is processing:
// the stream's, the entry's structured metadata, and what stages add. It
// is reset per entry and reuses its slices, so a pipeline without parsers
// does not allocate per entry.
type labelsBuilder struct {
	base []catLabel // the stream's labels, sorted
	lbls []catLabel // current labels, sorted by name
	err  string
	// errDetails is __error_details__.
	errDetails string

	final     []catLabel
	digest    *xxhash.Digest
	extracted map[string]string
}

func newLabelsBuilder() *labelsBuilder {
	return &labelsBuilder{digest: xxhash.New()}
}

// streamLabels converts a stream's labels once per stream.
func streamLabels(ls labels.Labels) []catLabel {
	out := make([]catLabel, 0, ls.Len())
	ls.Range(func(l labels.Label) {
		out = append(out, catLabel{name: l.Name, value: l.Value, cat: catStream})
	})
	return out
}

func (b *labelsBuilder) reset(base []catLabel, meta labels.Labels) {
	b.base = base
	b.lbls = append(b.lbls[:0], base...)
	b.err, b.errDetails = "", ""
	meta.Range(func(l labels.Label) {
		name := l.Name
		if b.baseHas(name) {
			name += extractedSuffix // as Loki does; rare enough not to intern
		}
		b.set(catMeta, name, l.Value)
	})
}

func (b *labelsBuilder) find(name string) (int, bool) {
	lo, hi := 0, len(b.lbls)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b.lbls[m].name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(b.lbls) && b.lbls[lo].name == name
}

func (b *labelsBuilder) get(name string) (string, bool) {
	switch name {
	case errorLabel:
		return b.err, b.err != ""
	case errorDetailsLabel:
		return b.errDetails, b.errDetails != ""
	}
	if i, ok := b.find(name); ok {
		return b.lbls[i].value, true
	}
	return "", false
}

func (b *labelsBuilder) set(cat labelCat, name, value string) {
	switch name {
	case errorLabel:
		b.err = value
		return
	case errorDetailsLabel:
		b.errDetails = value
		return
	}
	i, ok := b.find(name)
	if ok {
		b.lbls[i].value = value
		b.lbls[i].cat = cat
		return
	}
	b.lbls = append(b.lbls, catLabel{})
	copy(b.lbls[i+1:], b.lbls[i:])
	b.lbls[i] = catLabel{name: name, value: value, cat: cat}
}

func (b *labelsBuilder) del(name string) {
	switch name {
	case errorLabel:
		b.err = ""
		return
	case errorDetailsLabel:
		b.errDetails = ""
		return
	}
	if i, ok := b.find(name); ok {
		b.lbls = append(b.lbls[:i], b.lbls[i+1:]...)
	}
}

// baseHas reports whether the stream itself has the label: a parsed label
// of that name gets the _extracted suffix instead of overwriting it.
func (b *labelsBuilder) baseHas(name string) bool {
	lo, hi := 0, len(b.base)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b.base[m].name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(b.base) && b.base[lo].name == name
}

// setParsed sets a label a parser extracted.
func (b *labelsBuilder) setParsed(name, value string) {
	if b.baseHas(name) {
		n, ok := b.extracted[name]
		if !ok {
			n = name + extractedSuffix
			if b.extracted == nil {
				b.extracted = make(map[string]string)
			}
			if len(b.extracted) < maxInternedNames {
				b.extracted[name] = n
			}
		}
		name = n
	}
	b.set(catParsed, name, value)
}

func (b *labelsBuilder) setErr(kind string, err error) {
	if b.err != "" {
		return // keep the first, most useful error
	}
	b.err = kind
	if err != nil {
		b.errDetails = err.Error()
	}
}

// resolve fills b.final with the entry's final labels, sorted, without
// empty values and including the error labels, restricted by grouping g
// (nil keeps all) and without the label drop (for unwrap).
func (b *labelsBuilder) resolve(g *Grouping, drop string) []catLabel {
	out := b.final[:0]
	keep := func(name string) bool {
		if name == drop {
			return false
		}
		if g == nil {
			return true
		}
		for _, l := range g.Labels {
			if l == name {
				return !g.Without
			}
		}
		return g.Without
	}
	errs := [2]catLabel{{name: errorLabel, value: b.err, cat: catParsed}, {name: errorDetailsLabel, value: b.errDetails, cat: catParsed}}
	ei := 0
	for _, l := range b.lbls {
		for ei < 2 && errs[ei].name < l.name {
			if errs[ei].value != "" && keep(errs[ei].name) {
				out = append(out, errs[ei])
			}
			ei++
		}
		if l.value != "" && keep(l.name) {
			out = append(out, l)
		}
	}
	for ; ei < 2; ei++ {
		if errs[ei].value != "" && keep(errs[ei].name) {
			out = append(out, errs[ei])
		}
	}
	b.final = out
	return out
}

var hashSep = []byte{0xff}

// hashLabels hashes the labels of categories mask (a bit per labelCat).
func (b *labelsBuilder) hashLabels(ls []catLabel, mask uint8) uint64 {
	d := b.digest
	d.Reset()
	for _, l := range ls {
		if mask&(1<<l.cat) == 0 {
			continue
		}
		_, _ = d.WriteString(l.name)
		_, _ = d.Write(hashSep)
		_, _ = d.WriteString(l.value)
		_, _ = d.Write(hashSep)
	}
	return d.Sum64()
}

const allCats = 1<<catStream | 1<<catMeta | 1<<catParsed

// toLabels builds labels of the categories in mask.
func toLabels(ls []catLabel, mask uint8) labels.Labels {
	sb := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		if mask&(1<<l.cat) != 0 {
			sb.Add(l.name, l.value)
		}
	}
	return sb.Labels()
}

// equalLabels reports whether ls holds exactly the labels of cl in mask.
func equalLabels(ls labels.Labels, cl []catLabel, mask uint8) bool {
	i, ok := 0, true
	ls.Range(func(l labels.Label) {
		if !ok {
			return
		}
		for i < len(cl) && mask&(1<<cl[i].cat) == 0 {
			i++
		}
		if i >= len(cl) || cl[i].name != l.Name || cl[i].value != l.Value {
			ok = false
			return
		}
		i++
	})
	for i < len(cl) && mask&(1<<cl[i].cat) == 0 {
		i++
	}
	return ok && i == len(cl)
}

// labelIndex maps label sets to dense indexes by hash, checking equality
// so that a hash collision cannot merge two series.
type labelIndex struct {
	byHash map[uint64][]int
	labels []labels.Labels
}

func newLabelIndex() *labelIndex { return &labelIndex{byHash: make(map[uint64][]int)} }

// lookup returns the index of the label set cl (restricted to mask),
// adding it when new.
func (x *labelIndex) lookup(h uint64, cl []catLabel, mask uint8) (int, bool) {
	for _, i := range x.byHash[h] {
		if equalLabels(x.labels[i], cl, mask) {
			return i, false
		}
	}
	i := len(x.labels)
	x.labels = append(x.labels, toLabels(cl, mask))
	x.byHash[h] = append(x.byHash[h], i)
	return i, true
}
