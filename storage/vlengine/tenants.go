package vlengine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"
)

// unknownTenant is the TenantID reads of a tenant that never wrote use: no
// tenant is ever given it, so they find nothing.
var unknownTenant = logstorage.TenantID{AccountID: ^uint32(0), ProjectID: ^uint32(0)}

// tenantRegistry maps tenant IDs to VictoriaLogs TenantIDs, one to one.
// A hash alone would let two tenants whose hashes agree read each other's
// rows (and FNV collisions can be made on purpose), so every mapping is
// recorded, before the first row of its tenant is written, in a file next
// to the storage (<path>.tenants.json, written atomically and fsynced).
// A tenant gets its FNV hash (TenantID) when no other tenant holds it,
// which keeps the rows written before the registry existed readable by
// their tenant, else the next free ProjectID.
type tenantRegistry struct {
	path string

	mu   sync.RWMutex
	ids  map[string]logstorage.TenantID
	used map[logstorage.TenantID]string
}

func tenantRegistryPath(storagePath string) string {
	return filepath.Clean(storagePath) + ".tenants.json"
}

// registryEntry is one mapping in the file.
type registryEntry struct {
	Tenant    string `json:"tenant"`
	AccountID uint32 `json:"account_id"`
	ProjectID uint32 `json:"project_id"`
}

func openTenantRegistry(path string) (*tenantRegistry, error) {
	r := &tenantRegistry{path: path, ids: map[string]logstorage.TenantID{}, used: map[logstorage.TenantID]string{}}
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tenant registry: %w", err)
	}
	var entries []registryEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("tenant registry %s: %w", path, err)
	}
	for _, e := range entries {
		id := logstorage.TenantID{AccountID: e.AccountID, ProjectID: e.ProjectID}
		if other, dup := r.used[id]; dup || e.Tenant == "" || id == (logstorage.TenantID{}) || id == unknownTenant {
			return nil, fmt.Errorf("tenant registry %s: tenant %q: invalid or duplicate mapping (%v, also %q)", path, e.Tenant, id, other)
		}
		r.ids[e.Tenant] = id
		r.used[id] = e.Tenant
	}
	return r, nil
}

// lookup returns tenant's TenantID for a read: unknownTenant when it has
// none yet.
func (r *tenantRegistry) lookup(tenant string) logstorage.TenantID {
	if tenant == "" {
		return logstorage.TenantID{}
	}
	r.mu.RLock()
	id, ok := r.ids[tenant]
	r.mu.RUnlock()
	if !ok {
		return unknownTenant
	}
	return id
}

// assign returns tenant's TenantID for a write, recording a new one first.
func (r *tenantRegistry) assign(tenant string) (logstorage.TenantID, error) {
	if tenant == "" {
		return logstorage.TenantID{}, nil
	}
	r.mu.RLock()
	id, ok := r.ids[tenant]
	r.mu.RUnlock()
	if ok {
		return id, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.ids[tenant]; ok {
		return id, nil
	}
	id = TenantID(tenant)
	for {
		if _, taken := r.used[id]; !taken && id != (logstorage.TenantID{}) && id != unknownTenant {
			break
		}
		id.ProjectID++
	}
	r.ids[tenant] = id
	r.used[id] = tenant
	if err := r.save(); err != nil {
		delete(r.ids, tenant)
		delete(r.used, id)
		return logstorage.TenantID{}, err
	}
	return id, nil
}

// save writes the registry atomically: a synced temporary file renamed
// over the old one, then the directory synced. The caller holds r.mu.
func (r *tenantRegistry) save() error {
	entries := make([]registryEntry, 0, len(r.ids))
	for t, id := range r.ids {
		entries = append(entries, registryEntry{Tenant: t, AccountID: id.AccountID, ProjectID: id.ProjectID})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Tenant < entries[j].Tenant })
	raw, err := json.MarshalIndent(entries, "", "  ")
	if err != nil {
		return err
	}
	tmp := r.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("write tenant registry: %w", err)
	}
	_, err = f.Write(raw)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, r.path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write tenant registry: %w", err)
	}
	if d, err := os.Open(filepath.Dir(r.path)); err == nil {
		err = d.Sync()
		_ = d.Close()
		if err != nil {
			return fmt.Errorf("sync tenant registry directory: %w", err)
		}
	}
	return nil
}
