package scrape

// The service discoveries compiled into Pharos. Each registers itself with
// the discovery package, so a Prometheus configuration that uses them loads
// unchanged. Static configs are built into the discovery package itself.
import (
	_ "github.com/prometheus/prometheus/discovery/consul"     // consul_sd_configs
	_ "github.com/prometheus/prometheus/discovery/dns"        // dns_sd_configs
	_ "github.com/prometheus/prometheus/discovery/file"       // file_sd_configs
	_ "github.com/prometheus/prometheus/discovery/http"       // http_sd_configs
	_ "github.com/prometheus/prometheus/discovery/kubernetes" // kubernetes_sd_configs
)
