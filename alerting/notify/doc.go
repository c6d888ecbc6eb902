// Package notify delivers alerts to webhook receivers with Alertmanager's
// semantics, without running an Alertmanager: an Alertmanager-style routing
// tree puts alerts into aggregation groups, each group is notified after
// group_wait, again after group_interval when it changed and after
// repeat_interval when it did not, and resolved alerts are announced (if
// the receiver wants them) and then forgotten. Payloads are Alertmanager's
// webhook payload, version 4, so existing webhook consumers work as they
// are.
//
// Goroutines: the Notifier's service goroutine groups alerts and runs the
// group timers; each receiver has one goroutine that delivers its
// notifications, with retries and a circuit breaker, so that a slow or
// broken receiver delays nobody else. All of them stop with the service.
//
// State is in memory only. After a restart, alerts that are still firing
// arrive again from the rules and, being older than group_wait, are
// notified at once, as Alertmanager does without its notification log.
//
// Lock order: dispatcher.mu, then failureLog.mu. A receiver reports a
// delivery (notification.done) with no lock held.
package notify
