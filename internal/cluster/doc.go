// Package cluster will hold the dskit ring and memberlist set-up shared by
// the roles (partition ownership for aggregators, ring watching for
// queriers). Until then a split query role is given its aggregators with
// -query.aggregator.addresses. See the scale-out issue.
package cluster
