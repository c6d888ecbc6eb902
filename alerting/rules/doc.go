// Package rules evaluates alerting and recording rules in Prometheus's
// rule-file format with Prometheus's own rules manager, against the
// cluster-wide view of the data, and sends the alerts to Alertmanager (v2
// API, Prometheus's notifier) and to the built-in webhook receivers.
//
// Collaborators come in as interfaces and function types (Deps): the
// Queryable to evaluate against, the Appendable that takes recording-rule
// results and the ALERTS and ALERTS_FOR_STATE series, the OwnsFunc that
// says which groups this node evaluates, and the SendFunc of the webhook
// notifier. Of Pharos's other packages it imports only the LogQL engine
// (query/logql) and the logs.Querier interface (storage/logs), for log
// rules, and internal/tenant, for per-tenant rules.
//
// # Tenants
//
// Rules are per tenant, as in the Cortex, Mimir and Loki rulers with local
// storage: Config.Files and Config.LogFiles are the default tenant's, and
// Config.TenantsDir holds a directory per tenant (named by its ID) with
// that tenant's PromQL files and, in logs/, its LogQL files. Each rule
// set (a tenant's files of one language from one source) has its own
// Prometheus rules manager, whose context carries the tenant
// (tenant.WithContext): the rules package evaluates, appends
// (AppendableV2.AppenderV2(ctx)), marks stale and restores `for` state in
// contexts made from it, so a tenant's rules read only its data — the
// Queryable and the log store scope reads to the context's tenant — and
// write as it. The rules API answers the request's tenant
// (tenant.FromContext) with its groups only. Alerts of a tenant other
// than the default one are notified with TenantLabel. Sets are made as
// loads find them and never removed while the Manager runs: a set whose
// directory went away has no groups, and its rules manager marks their
// series stale.
//
// # Log rules
//
// Rule files listed by -rules.log-files are in the same format, but their
// expressions are LogQL metric queries, evaluated over Deps.Logs; they
// are kept apart from -rules.files because some expressions, such as
// sum(rate({app="x"}[5m])), are valid in both languages. They go through
// a second Prometheus rules manager whose parser validates LogQL
// (logParser: rulefmt's validation, templates and line numbers stay) and
// whose QueryFunc is the LogQL engine, with everything else shared:
// ownership by group key, the Appendable for recording-rule results and
// ALERTS, the `for`-state restore from ALERTS_FOR_STATE in the metrics
// Queryable, the notification path and the rules API. The notifications
// of firing log alerts carry a few of the lines behind them
// (SampleLinesAnnotation), looked up for at most -rules.log-sample-timeout.
//
// # Ownership
//
// Each group is evaluated by one node, chosen by OwnsFunc on the group's
// key (TenantGroupKey: the tenant, file and group name). Ownership is applied in two places:
//
//   - at load: the rules manager's GroupLoader (ownedLoader) hands it the
//     owned groups only, and OwnershipChanged applies the filter again
//     (rules.Manager.Update with the files already parsed). A group lost
//     stops; a group gained is new to the rules manager, which restores the
//     `for` state of its alerts from ALERTS_FOR_STATE after its second
//     evaluation, exactly as after a restart (RestoreNewRuleGroups).
//     Unchanged groups keep running. This is Prometheus's own restore
//     path, so restores behave as Prometheus documents them
//     (-rules.outage-tolerance, -rules.for-grace-period).
//   - before each evaluation: the GroupEvalIterationFunc asks OwnsFunc and
//     skips the evaluation of a group lost, for the moment between the
//     ring changing and OwnershipChanged being applied.
//
// Filtering per evaluation alone would keep the stale in-memory state of
// groups owned long ago and never restore on takeover, and the rules
// package offers no hook to reset a running group; filtering at load alone
// would leave a lost group evaluating until the update is applied. The
// rules manager marks the series of a stopped group stale two intervals
// later; for a group that moved, those markers would cut the series the
// new owner writes and hide the alert state it restores from, so writes
// for groups this node does not own are dropped (ownedAppendable).
//
// # Goroutines
//
// Each rules manager runs one goroutine per owned group, and one (Run)
// from start to stop; the notifier one
// per Alertmanager; the notification of a log alert runs up to four
// sample look-ups, which it waits for or, past the timeout, cancels (the
// service waits for those when it stops). The service's running goroutine
// applies ownership changes. All of them stop with the service:
// evaluations first (their last notifications are queued), then the
// notifier, which sends what is queued.
//
// Lock order: Manager.mu, then the rules managers' own locks (taken inside
// rules.Manager.Update). Notifications take neither: the rules manager
// waits for its groups with its lock held.
package rules
