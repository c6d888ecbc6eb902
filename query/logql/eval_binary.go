package logql

import (
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// Binary operations follow PromQL's semantics, which LogQL copies:
// comparisons filter unless bool is given, vector matching is one-to-one
// on all labels unless on/ignoring and group_left/group_right say
// otherwise.

func (ev *evaluator) evalBinary(e *BinaryExpr) (stepVal, error) {
	l, err := ev.eval(e.LHS, nil)
	if err != nil {
		return stepVal{}, err
	}
	r, err := ev.eval(e.RHS, nil)
	if err != nil {
		return stepVal{}, err
	}
	switch {
	case l.scalar && r.scalar:
		v, keep := binop(e.Op, l.f, r.f)
		if isComparison(e.Op) {
			v = b2f(keep)
		}
		return stepVal{scalar: true, f: v}, nil
	case l.scalar:
		out := make([]promql.Vector, len(r.vecs))
		for i, vec := range r.vecs {
			out[i] = vectorScalarBinop(e, vec, l.f, true)
		}
		return stepVal{vecs: out}, nil
	case r.scalar:
		out := make([]promql.Vector, len(l.vecs))
		for i, vec := range l.vecs {
			out[i] = vectorScalarBinop(e, vec, r.f, false)
		}
		return stepVal{vecs: out}, nil
	}
	out := make([]promql.Vector, len(l.vecs))
	for i := range l.vecs {
		var err error
		if out[i], err = vectorBinop(e, l.vecs[i], r.vecs[i]); err != nil {
			return stepVal{}, err
		}
	}
	return stepVal{vecs: out}, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// binop applies an arithmetic or comparison operator; for comparisons, keep
// says whether the comparison holds and the value is the left operand.
func binop(op string, l, r float64) (float64, bool) {
	switch op {
	case "+":
		return l + r, true
	case "-":
		return l - r, true
	case "*":
		return l * r, true
	case "/":
		return l / r, true
	case "%":
		return math.Mod(l, r), true
	case "^":
		return math.Pow(l, r), true
	case "==":
		return l, l == r
	case "!=":
		return l, l != r
	case ">":
		return l, l > r
	case ">=":
		return l, l >= r
	case "<":
		return l, l < r
	case "<=":
		return l, l <= r
	}
	panic("logql: unknown binary operator " + op)
}

func vectorScalarBinop(e *BinaryExpr, vec promql.Vector, s float64, scalarLeft bool) promql.Vector {
	var out promql.Vector
	for _, smp := range vec {
		l, r := smp.F, s
		if scalarLeft {
			l, r = r, l
		}
		v, keep := binop(e.Op, l, r)
		if isComparison(e.Op) {
			// The vector's value stays the result even when the scalar is on
			// the left.
			v = smp.F
			if e.ReturnBool {
				v, keep = b2f(keep), true
			}
		}
		if keep {
			out = append(out, promql.Sample{T: smp.T, F: v, Metric: smp.Metric})
		}
	}
	return out
}

// signatureFunc hashes the labels a vector matching compares.
func signatureFunc(m *VectorMatching) func(labels.Labels) uint64 {
	var buf []byte
	if m == nil {
		return func(l labels.Labels) uint64 { return l.Hash() }
	}
	if m.On {
		return func(l labels.Labels) uint64 {
			var h uint64
			h, buf = l.HashForLabels(buf, m.Labels...)
			return h
		}
	}
	return func(l labels.Labels) uint64 {
		var h uint64
		h, buf = l.HashWithoutLabels(buf, m.Labels...)
		return h
	}
}

func vectorBinop(e *BinaryExpr, lhs, rhs promql.Vector) (promql.Vector, error) {
	sig := signatureFunc(e.Matching)
	switch e.Op {
	case "and", "unless":
		right := make(map[uint64]struct{}, len(rhs))
		for _, s := range rhs {
			right[sig(s.Metric)] = struct{}{}
		}
		var out promql.Vector
		for _, s := range lhs {
			if _, ok := right[sig(s.Metric)]; ok == (e.Op == "and") {
				out = append(out, s)
			}
		}
		return out, nil
	case "or":
		left := make(map[uint64]struct{}, len(lhs))
		out := make(promql.Vector, 0, len(lhs)+len(rhs))
		for _, s := range lhs {
			left[sig(s.Metric)] = struct{}{}
			out = append(out, s)
		}
		for _, s := range rhs {
			if _, ok := left[sig(s.Metric)]; !ok {
				out = append(out, s)
			}
		}
		return out, nil
	}

	card := CardOneToOne
	if e.Matching != nil {
		card = e.Matching.Card
	}
	// group_right is group_left with the sides swapped.
	if card == CardOneToMany {
		lhs, rhs = rhs, lhs
	}
	one := make(map[uint64]promql.Sample, len(rhs))
	for _, s := range rhs {
		h := sig(s.Metric)
		if dup, ok := one[h]; ok {
			side := "right"
			if card == CardOneToMany {
				side = "left"
			}
			return nil, fmt.Errorf("found duplicate series for the match group %s on the %s hand-side of the operation: [%s, %s];many-to-many matching not allowed: matching labels must be unique on one side",
				matchGroup(s.Metric, e.Matching), side, s.Metric, dup.Metric)
		}
		one[h] = s
	}
	matched := map[uint64]struct{}{}
	var out promql.Vector
	for _, ls := range lhs {
		h := sig(ls.Metric)
		rs, ok := one[h]
		if !ok {
			continue
		}
		l, r := ls.F, rs.F
		if card == CardOneToMany {
			l, r = r, l
		}
		v, keep := binop(e.Op, l, r)
		if isComparison(e.Op) && e.ReturnBool {
			v, keep = b2f(keep), true
		}
		if !keep {
			continue
		}
		metric := resultMetric(ls.Metric, rs.Metric, e.Matching, card)
		if card == CardOneToOne {
			if _, dup := matched[h]; dup {
				return nil, fmt.Errorf("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)")
			}
			matched[h] = struct{}{}
		} else {
			mh := metric.Hash()
			if _, dup := matched[mh]; dup {
				return nil, fmt.Errorf("multiple matches for labels: grouping labels must ensure unique matches")
			}
			matched[mh] = struct{}{}
		}
		out = append(out, promql.Sample{T: ls.T, F: v, Metric: metric})
	}
	return out, nil
}

func matchGroup(l labels.Labels, m *VectorMatching) labels.Labels {
	if m == nil {
		return l
	}
	return l.MatchLabels(m.On, m.Labels...)
}

// resultMetric is PromQL's: one-to-one keeps the on labels (or drops the
// ignoring ones); group_x copies the include labels from the "one" side.
func resultMetric(lhs, rhs labels.Labels, m *VectorMatching, card VectorCard) labels.Labels {
	if m == nil {
		return lhs
	}
	b := labels.NewBuilder(lhs)
	if card == CardOneToOne {
		if m.On {
			b.Keep(m.Labels...)
		} else {
			b.Del(m.Labels...)
		}
		return b.Labels()
	}
	for _, name := range m.Include {
		if v := rhs.Get(name); v != "" {
			b.Set(name, v)
		} else {
			b.Del(name)
		}
	}
	return b.Labels()
}
