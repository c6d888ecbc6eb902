package overrides

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync/atomic"

	"go.yaml.in/yaml/v3"

	"github.com/pharos-obs/pharos/internal/auth"
	"github.com/pharos-obs/pharos/internal/tenant"
)

// maxFileBytes bounds the overrides file: thousands of tenants fit.
const maxFileBytes = 16 << 20

// Overrides answers a tenant's limits: the defaults, or the tenant's
// entry of the overrides file laid over them. It is safe for concurrent
// use; Reload swaps the table atomically, so a lookup never sees half a
// reload.
type Overrides struct {
	cfg      Config
	defaults Limits
	table    atomic.Pointer[map[string]*Limits]
}

// New returns the Overrides of cfg, whose label limits default to those
// of labels (the agent's validation limits), and loads the overrides
// file if cfg names one.
func New(cfg Config, labels Limits) (*Overrides, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := &Overrides{cfg: cfg, defaults: cfg.defaults(labels)}
	if err := o.defaults.Validate("limits."); err != nil {
		return nil, err
	}
	empty := map[string]*Limits{}
	o.table.Store(&empty)
	if err := o.Reload(); err != nil {
		return nil, err
	}
	return o, nil
}

// Config returns the configuration the Overrides were built with.
func (o *Overrides) Config() Config { return o.cfg }

// Defaults returns the limits of tenants without an override.
func (o *Overrides) Defaults() Limits { return o.defaults }

// For returns id's limits. The result is shared: do not modify it.
func (o *Overrides) For(id string) *Limits {
	l, _ := o.Lookup(id)
	return l
}

// Lookup returns id's limits, and whether they come from id's entry in
// the overrides file (else they are the defaults). The result is shared:
// do not modify it.
func (o *Overrides) Lookup(id string) (*Limits, bool) {
	if l, ok := (*o.table.Load())[id]; ok {
		return l, true
	}
	return &o.defaults, false
}

// Tenants lists the tenants with an override, sorted.
func (o *Overrides) Tenants() []string {
	t := *o.table.Load()
	out := make([]string, 0, len(t))
	for id := range t {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Reload reads the overrides file again. On error the limits in force
// stay as they were.
func (o *Overrides) Reload() error {
	if o.cfg.OverridesFile == "" {
		return nil
	}
	t, err := o.load(o.cfg.OverridesFile)
	if err != nil {
		return err
	}
	o.table.Store(&t)
	return nil
}

// file is the overrides file's layout, as Mimir's and Loki's runtime
// configuration files have it.
type file struct {
	Overrides map[string]yaml.Node `yaml:"overrides"`
}

func (o *Overrides) load(path string) (map[string]*Limits, error) {
	raw, err := auth.ReadRegularFile(path, maxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("limits.overrides_file: %w", err)
	}
	t, err := o.parse(raw)
	if err != nil {
		return nil, fmt.Errorf("limits.overrides_file: %s: %w", path, err)
	}
	return t, nil
}

// parse reads an overrides file's content: each tenant's entry is decoded
// over a copy of the defaults, so the limits it does not name keep them.
func (o *Overrides) parse(raw []byte) (map[string]*Limits, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	t := make(map[string]*Limits, len(f.Overrides))
	var errs []error
	ids := make([]string, 0, len(f.Overrides))
	for id := range f.Overrides {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		node := f.Overrides[id]
		if err := tenant.Validate(id); err != nil {
			errs = append(errs, fmt.Errorf("overrides: %w", err))
			continue
		}
		l := o.defaults
		if node.Kind != 0 && !(node.Kind == yaml.ScalarNode && node.Tag == "!!null") {
			if err := decodeStrict(&node, &l); err != nil {
				errs = append(errs, fmt.Errorf("overrides.%s: %w", id, err))
				continue
			}
		}
		if err := l.Validate("overrides." + id + "."); err != nil {
			errs = append(errs, err)
			continue
		}
		t[id] = &l
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// decodeStrict decodes node into v refusing unknown fields, which
// yaml.Node.Decode does not: the node is re-encoded and decoded again.
func decodeStrict(node *yaml.Node, v any) error {
	raw, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
