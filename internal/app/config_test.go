package app

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pharos.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`
data_dir: /from/file
http:
  listen_address: 127.0.0.1:1111
nats:
  partitions: 8
agent:
  publish:
    flush_interval: 3s
`), 0o600))

	cfg, _, err := Load([]string{"-config.file", file, "-nats.partitions=32"}, env(map[string]string{
		"PHAROS_HTTP_LISTEN_ADDRESS": "127.0.0.1:2222",
		"PHAROS_NATS_PARTITIONS":     "16",
	}), nil)
	require.NoError(t, err)
	require.Equal(t, "/from/file", cfg.DataDir, "file overrides default")
	require.Equal(t, "127.0.0.1:2222", cfg.HTTP.ListenAddress, "env overrides file")
	require.Equal(t, 32, cfg.NATS.Partitions, "flag overrides env and file")
	require.Equal(t, "3s", cfg.Agent.Publish.FlushInterval.String())
	require.Equal(t, []string{"all"}, []string(cfg.Target))
	require.NoError(t, cfg.Validate())
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.yaml")
	require.NoError(t, os.WriteFile(unknown, []byte("nats:\n  partitionz: 3\n"), 0o600))
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"unknown yaml field": {args: []string{"-config.file=" + unknown}, want: "partitionz"},
		"missing file":       {args: []string{"-config.file", filepath.Join(dir, "nope.yaml")}, want: "config.file"},
		"bad env value":      {env: map[string]string{"PHAROS_NATS_PARTITIONS": "many"}, want: "PHAROS_NATS_PARTITIONS"},
		"unknown flag":       {args: []string{"-no.such.flag"}, want: "no.such.flag"},
		"stray argument":     {args: []string{"serve"}, want: "serve"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := Load(tc.args, env(tc.env), nil)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestValidateNamesTheField(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"unknown target":         {args: []string{"-target=bogus"}, want: "target"},
		"agent without nats":     {args: []string{"-target=agent"}, want: "nats.url"},
		"bad replication factor": {args: []string{"-ring.replication-factor=0"}, want: "ring.replication_factor"},
		"zero partitions":        {args: []string{"-nats.partitions=0"}, want: "nats.partitions"},
		"empty data dir":         {args: []string{"-data.dir="}, want: "data_dir"},
		"bad compression":        {args: []string{"-agent.publish.compression=lz4"}, want: "agent.publish.compression"},
		"zero batch":             {args: []string{"-agent.publish.max-batch-samples=0"}, want: "agent.publish.max_batch_samples"},
		"negative retention":     {args: []string{"-storage.metrics.retention=-1d"}, want: "storage.metrics.retention"},
		"zero query concurrency": {args: []string{"-query.max-concurrent=0"}, want: "query.max_concurrent"},
		"rate without burst":     {args: []string{"-limits.ingestion-rate=5"}, want: "limits.ingestion_burst_size"},
		"negative series limit":  {args: []string{"-limits.max-series=-1"}, want: "limits.max_series"},
		"broken scrape file":     {args: []string{"-scrape.config-file=testdata/broken-scrape.yml"}, want: "scrape.config_file"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, _, err := Load(tc.args, env(nil), nil)
			if err == nil {
				err = cfg.Validate()
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestValidateReportsEveryError(t *testing.T) {
	cfg, _, err := Load([]string{"-nats.partitions=0", "-query.max-concurrent=0"}, env(nil), nil)
	require.NoError(t, err)
	err = cfg.Validate()
	require.ErrorContains(t, err, "nats.partitions")
	require.ErrorContains(t, err, "query.max_concurrent")
}

func TestExampleConfigIsValid(t *testing.T) {
	cfg, _, err := Load([]string{"-config.file=../../pharos.example.yaml"}, env(nil), nil)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
}

func TestEnvName(t *testing.T) {
	require.Equal(t, "PHAROS_HTTP_LISTEN_ADDRESS", EnvName("http.listen-address"))
	require.Equal(t, "PHAROS_NATS_URL", EnvName("nats.url"))
}
