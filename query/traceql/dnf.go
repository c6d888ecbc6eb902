package traceql

import (
	"fmt"
	"slices"

	"github.com/pharos-obs/pharos/storage/traces"
)

// tooComplex is the error of a query whose normal form is too long.
func tooComplex(pos, groups int) error {
	return &UnsupportedError{Pos: pos, Feature: fmt.Sprintf(
		"a query whose normal form has more than %d alternatives (got %d): || inside && multiplies them; write fewer alternatives", MaxGroups, groups)}
}

// or is a ∨ b, simplified.
func or(a, b dnf, pos int) (dnf, error) {
	d := make(dnf, 0, len(a)+len(b))
	d = append(append(d, a...), b...)
	d = simplify(d)
	if len(d) > MaxGroups {
		return nil, tooComplex(pos, len(d))
	}
	return d, nil
}

// and is a ∧ b multiplied out, simplified.
func and(a, b dnf, pos int) (dnf, error) {
	if n := len(a) * len(b); n > maxProduct {
		return nil, tooComplex(pos, n)
	}
	d := make(dnf, 0, len(a)*len(b))
	for _, ga := range a {
		for _, gb := range b {
			g := make([]traces.Condition, 0, len(ga)+len(gb))
			g = append(g, ga...)
			for _, c := range gb {
				if !slices.Contains(g, c) {
					g = append(g, c)
				}
			}
			d = append(d, g)
		}
	}
	d = simplify(d)
	if len(d) > MaxGroups {
		return nil, tooComplex(pos, len(d))
	}
	return d, nil
}

// simplify drops groups that repeat or contain another group (a ∨ (a ∧ b)
// is a), keeping the first of equal groups and the order. Groups hold no
// repeated conditions.
func simplify(d dnf) dnf {
	out := d[:0:0]
	for i, g := range d {
		absorbed := false
		for j, h := range d {
			if i == j || len(h) > len(g) || !subset(h, g) {
				continue
			}
			// h ⊆ g: g goes, unless they are equal and g comes first.
			if len(h) < len(g) || j < i {
				absorbed = true
				break
			}
		}
		if !absorbed {
			out = append(out, g)
		}
	}
	return out
}

// subset reports whether every condition of a is in b.
func subset(a, b []traces.Condition) bool {
	for _, c := range a {
		if !slices.Contains(b, c) {
			return false
		}
	}
	return true
}
