// Package cluster is the membership machinery of Pharos' scale-out: which
// aggregators are alive, and which of them consumes which partition.
//
// Aggregators register in a dskit ring kept in a KV store — by default
// memberlist gossip between the processes themselves, no coordinator
// (Consul and etcd can be chosen with -ring.store). Each runs a Member: it
// heartbeats, leaves cleanly on stop, and computes from the healthy members
// which partition-replicas it owns. Every member computes the same owners
// from the same ring view, because ownership is the pure function Assign
// of the healthy member IDs, the partition count and the replication
// factor; no owner is ever written to the ring.
//
// Queriers run a Watcher: it follows the same ring without joining it and
// lists the healthy aggregators with their read-API addresses, plus the
// unhealthy and recently departed ones.
//
// One process has one KV (one gossip node) that its Member and Watcher
// share; the KV starts before them and stops after them.
//
// Membership is AP: gossip converges within a few gossip intervals, and
// until it does two members may briefly disagree on an owner. That is safe
// because replica r of partition p is consumed through one durable
// JetStream consumer, whoever runs it, and the stream keeps what is not
// acknowledged.
package cluster
