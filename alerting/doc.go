// Package alerting will evaluate Prometheus-format rule groups (one owner per
// group through the ring) and deliver notifications to Alertmanager and
// webhooks. It reaches storage only through interfaces passed in by
// internal/app. Nothing is implemented yet: see the alerting issue.
package alerting
