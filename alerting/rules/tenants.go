package rules

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	promrules "github.com/prometheus/prometheus/rules"

	"github.com/pharos-obs/pharos/internal/tenant"
)

// TenantLabel is the label added to the notifications (Alertmanager and
// webhook receivers) of the alerts of a tenant other than the default one,
// set to the tenant's ID, so that routes can tell tenants apart. A label
// of that name from the rule or the series is overwritten: a tenant cannot
// route its alerts as another's. The default tenant's alerts are sent as
// they are.
const TenantLabel = "tenant"

// logsSubdir is the subdirectory of a tenant's directory that holds its
// LogQL rule files.
const logsSubdir = "logs"

// TenantGroupKey is the key OwnsFunc gets for the rule group named group
// in file of tenant id. The default tenant's is GroupKey(file, group), so
// that its groups keep their owners; any other tenant's is prefixed with
// the ID and a NUL byte, which neither an ID nor a path holds, so that
// groups of two tenants never share a key and are owned independently.
func TenantGroupKey(id, file, group string) string {
	if id == tenant.Default || id == "" {
		return GroupKey(file, group)
	}
	return id + "\x00" + GroupKey(file, group)
}

// tenantFiles are the rule files of one tenant directory.
type tenantFiles struct {
	promql, logql []string
}

// listTenantsDir returns the tenants of dir by ID, with their rule files:
// every subdirectory is a tenant, named by its ID (tenant.Validate);
// <dir>/<id>/*.yml and *.yaml are its PromQL rule files, the same in
// <dir>/<id>/logs/ its LogQL ones, sorted by name. Symbolic links are
// followed. Entries whose names start with '.' are skipped: Kubernetes
// mounts a volume's files through "..data" and timestamped directories,
// and editors leave hidden files; other files in dir are ignored. Paths
// are joined to dir as given, so that every node computes the same group
// keys from the same configuration. It returns every error, each naming
// the field and the path.
func listTenantsDir(dir string) (map[string]tenantFiles, []error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{fmt.Errorf("%s: %w", fieldTenants, err)}
	}
	out := map[string]tenantFiles{}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", fieldTenants, err))
			continue
		}
		if !fi.IsDir() {
			continue
		}
		if err := tenant.Validate(name); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: the directory's name is not a tenant ID: %w", fieldTenants, p, err))
			continue
		}
		var tf tenantFiles
		var err1, err2 error
		tf.promql, err1 = ruleFilesIn(p)
		tf.logql, err2 = ruleFilesIn(filepath.Join(p, logsSubdir))
		if errors.Is(err2, fs.ErrNotExist) {
			err2 = nil // a tenant without log rules
		}
		if err := errors.Join(err1, err2); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", fieldTenants, err))
			continue
		}
		out[name] = tf
	}
	return out, errs
}

// ruleFilesIn returns the rule files (*.yml, *.yaml, not hidden) of dir,
// sorted by name. Subdirectories are not read.
func ruleFilesIn(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || (!strings.HasSuffix(name, ".yml") && !strings.HasSuffix(name, ".yaml")) {
			continue
		}
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if fi.Mode().IsRegular() {
			files = append(files, p)
		}
	}
	return files, nil
}

// CheckTenantsDir checks the rule files of a tenants directory
// (Config.TenantsDir) as Check and CheckLogQL do, and its layout: every
// subdirectory must be named by a valid tenant ID. It returns every error,
// each naming its path.
func CheckTenantsDir(dir string) []error {
	tenants, errs := listTenantsDir(dir)
	for _, id := range slices.Sorted(maps.Keys(tenants)) {
		tf := tenants[id]
		errs = append(errs, Check(tf.promql...)...)
		errs = append(errs, CheckLogQL(tf.logql...)...)
	}
	return errs
}

// groupsOf returns the groups of sets whose tenant is id (any tenant when
// all), sorted by file and name.
func groupsOf(sets []*ruleSet, id string, all bool) []*promrules.Group {
	var gs []*promrules.Group
	for _, s := range sets {
		if all || s.key.tenant == id {
			gs = append(gs, s.rm.RuleGroups()...)
		}
	}
	sortGroups(gs)
	return gs
}
