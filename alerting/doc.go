// Package alerting holds Pharos's alerting: rules (Prometheus rule files
// evaluated with the Prometheus rules package, one owner per group through
// the ring) and notify (Alertmanager-compatible webhook receivers with
// routing, grouping, retries and circuit breakers). Both are built and
// tested as packages; wiring them into the aggregator is the alerting
// issue's remaining work.
package alerting
