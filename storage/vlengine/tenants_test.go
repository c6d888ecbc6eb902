package vlengine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"
	"github.com/stretchr/testify/require"
)

func TestTenantRegistry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs.tenants.json")
	r, err := openTenantRegistry(path)
	require.NoError(t, err)

	require.Equal(t, logstorage.TenantID{}, r.lookup(""))
	require.Equal(t, unknownTenant, r.lookup("team-a"), "a tenant that never wrote reads nothing")

	a, err := r.assign("team-a")
	require.NoError(t, err)
	require.Equal(t, TenantID("team-a"), a, "the hash when free, so rows from before the registry stay readable")
	require.Equal(t, a, r.lookup("team-a"))
	again, err := r.assign("team-a")
	require.NoError(t, err)
	require.Equal(t, a, again)

	// Reopened, the mapping is the same.
	r2, err := openTenantRegistry(path)
	require.NoError(t, err)
	require.Equal(t, a, r2.lookup("team-a"))
}

// A tenant whose hash another tenant holds gets another TenantID: two
// tenants never share rows.
func TestTenantRegistryCollision(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs.tenants.json")
	victim := TenantID("victim")
	raw, err := json.Marshal([]registryEntry{{Tenant: "holder", AccountID: victim.AccountID, ProjectID: victim.ProjectID}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, raw, 0o644))
	r, err := openTenantRegistry(path)
	require.NoError(t, err)
	require.Equal(t, unknownTenant, r.lookup("victim"))

	id, err := r.assign("victim")
	require.NoError(t, err)
	require.NotEqual(t, victim, id)
	require.NotEqual(t, r.lookup("holder"), r.lookup("victim"))

	r2, err := openTenantRegistry(path)
	require.NoError(t, err)
	require.Equal(t, id, r2.lookup("victim"))
	require.Equal(t, victim, r2.lookup("holder"))
}

func TestTenantRegistryRefusesABadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs.tenants.json")
	raw, err := json.Marshal([]registryEntry{{Tenant: "a", AccountID: 1, ProjectID: 2}, {Tenant: "b", AccountID: 1, ProjectID: 2}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, raw, 0o644))
	_, err = openTenantRegistry(path)
	require.ErrorContains(t, err, "duplicate")
}
