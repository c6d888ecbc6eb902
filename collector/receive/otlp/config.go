package otlp

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"

	"github.com/grafana/dskit/flagext"
	"github.com/prometheus/otlptranslator"

	"github.com/pharos-obs/pharos/internal/auth"
)

// Config is the OTLP receiver: its two listeners and how OTLP metrics are
// named in Prometheus.
type Config struct {
	GRPC ListenerConfig `yaml:"grpc"`
	HTTP ListenerConfig `yaml:"http"`
	// TLS serves both listeners over TLS. When its cert_file is empty the
	// process gives them the HTTP listener's TLS (http.tls) instead.
	TLS auth.TLSConfig `yaml:"tls"`

	// TranslationStrategy is how OTLP metric and attribute names become
	// Prometheus names (as Prometheus's otlp.translation_strategy).
	TranslationStrategy string `yaml:"translation_strategy"`
	// PromoteResourceAttributes are resource attributes copied onto every
	// series of their resource (they are always on target_info).
	PromoteResourceAttributes flagext.StringSliceCSV `yaml:"promote_resource_attributes"`
	// KeepIdentifyingResourceAttributes keeps service.name,
	// service.namespace and service.instance.id on target_info besides
	// job and instance.
	KeepIdentifyingResourceAttributes bool `yaml:"keep_identifying_resource_attributes"`
	// ConvertHistogramsToNHCB turns explicit-bucket histograms into native
	// histograms with custom buckets instead of _bucket/_sum/_count series.
	ConvertHistogramsToNHCB bool `yaml:"convert_histograms_to_nhcb"`
	// PromoteScopeMetadata adds otel_scope_name, otel_scope_version and
	// otel_scope_* attribute labels.
	PromoteScopeMetadata bool `yaml:"promote_scope_metadata"`
}

// ListenerConfig is one listener.
type ListenerConfig struct {
	// ListenAddress is host:port; empty turns the listener off.
	ListenAddress string `yaml:"listen_address"`
}

// RegisterFlags registers the options under -otlp. The two listen-address
// flags are fixed contracts.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.GRPC.ListenAddress, "otlp.grpc.listen-address", "127.0.0.1:4317", "OTLP/gRPC listener of the agent; empty turns it off.")
	f.StringVar(&c.HTTP.ListenAddress, "otlp.http.listen-address", "127.0.0.1:4318", "OTLP/HTTP listener of the agent (/v1/metrics; also served on the main HTTP port); empty turns it off.")
	c.TLS.RegisterFlagsWithPrefix("otlp.tls", "the OTLP gRPC and HTTP listeners (when unset, they use -http.tls.*)", f)
	f.StringVar(&c.TranslationStrategy, "otlp.translation-strategy", string(otlptranslator.UnderscoreEscapingWithSuffixes),
		"How OTLP names become Prometheus names: UnderscoreEscapingWithSuffixes (Prometheus 3 default), UnderscoreEscapingWithoutSuffixes, NoUTF8EscapingWithSuffixes or NoTranslation.")
	f.Var(&c.PromoteResourceAttributes, "otlp.promote-resource-attributes", "Comma-separated resource attributes copied as labels onto every series of their resource.")
	f.BoolVar(&c.KeepIdentifyingResourceAttributes, "otlp.keep-identifying-resource-attributes", false, "Keep service.name, service.namespace and service.instance.id as labels of target_info, besides job and instance.")
	f.BoolVar(&c.ConvertHistogramsToNHCB, "otlp.convert-histograms-to-nhcb", false, "Store explicit-bucket OTLP histograms as native histograms with custom buckets.")
	f.BoolVar(&c.PromoteScopeMetadata, "otlp.promote-scope-metadata", false, "Add the instrumentation scope (otel_scope_name, otel_scope_version, otel_scope_* attributes) as labels.")
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	for _, l := range []struct {
		name, addr string
	}{{"otlp.grpc.listen_address", c.GRPC.ListenAddress}, {"otlp.http.listen_address", c.HTTP.ListenAddress}} {
		if l.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(l.addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", l.name, err))
		}
	}
	if c.GRPC.ListenAddress != "" && c.GRPC.ListenAddress == c.HTTP.ListenAddress && !strings.HasSuffix(c.GRPC.ListenAddress, ":0") {
		errs = append(errs, fmt.Errorf("otlp.http.listen_address: must differ from otlp.grpc.listen_address (%s)", c.GRPC.ListenAddress))
	}
	errs = append(errs, c.TLS.Validate("otlp.tls"))
	switch otlptranslator.TranslationStrategyOption(c.TranslationStrategy) {
	case otlptranslator.UnderscoreEscapingWithSuffixes, otlptranslator.UnderscoreEscapingWithoutSuffixes,
		otlptranslator.NoUTF8EscapingWithSuffixes, otlptranslator.NoTranslation:
	default:
		errs = append(errs, fmt.Errorf("otlp.translation_strategy: unknown strategy %q (want UnderscoreEscapingWithSuffixes, UnderscoreEscapingWithoutSuffixes, NoUTF8EscapingWithSuffixes or NoTranslation)", c.TranslationStrategy))
	}
	return errors.Join(errs...)
}
