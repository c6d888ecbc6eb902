// Package bus carries Pharos batches over NATS JetStream. It is the only
// importer of nats.go and nats-server in the project, so the rest of the code
// meets NATS through this small surface: subjects and stream names, a
// publisher that returns after the PubAck, a partition consumer that hands
// over batches and lets the caller ack after its own durable commit, and the
// embedded server of the all-in-one target.
//
// Wire contract (fixed, see DESIGN.md): one stream PHAROS_<SIGNAL> per
// signal over subjects pharos.<signal>.<partition>; every message carries
// the headers Pharos-Tenant, Pharos-Encoding and Nats-Msg-Id, the last of
// which lets JetStream drop a retried publish.
//
// Delivery is at least once: a batch whose ack is lost, or whose consumer
// dies before acking, is delivered again. Consumers must tolerate that.
package bus
