package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pharos-obs/pharos/internal/testcerts"
	"github.com/pharos-obs/pharos/internal/testutil"
)

// TestNATSTLSAndToken runs split roles against a `-target=nats` node that
// serves TLS and requires a token: an agent and an aggregator given the
// CA and the token deliver scraped samples end to end; an agent that
// trusts another CA fails the handshake and is never ready.
func TestNATSTLSAndToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, other := testcerts.NewCA(t, "nats-ca"), testcerts.NewCA(t, "other-ca")
	cert, key := ca.CertFiles(t, dir, "nats-server")
	caFile, otherFile := ca.CAFile(t, dir), other.CAFile(t, dir)
	token := testcerts.WriteFile(t, dir, "nats.token", []byte("e2e-"+fmt.Sprint(time.Now().UnixNano())+"\n"))

	client := freeAddr(t)
	startPharos(t, "nats", []string{"-target=nats", "-data.dir", t.TempDir(),
		"-nats.embedded.listen-address", client,
		"-nats.embedded.tls.cert-file", cert, "-nats.embedded.tls.key-file", key,
		"-nats.embedded.auth.token-file", token})

	url := "tls://" + client
	common := append([]string{"-nats.url", url, "-nats.tls.ca-file", caFile, "-nats.token-file", token,
		"-nats.partitions", "2", "-ring.replication-factor", "1"}, clusterTiming...)
	target := startCountingTarget(t, 3)
	agg := startPharos(t, "aggregator", append([]string{"-target=aggregator,query", "-data.dir", t.TempDir(),
		"-ring.instance-id", "aggregator-1"}, common...))
	startPharos(t, "agent", append([]string{"-target=agent", "-data.dir", t.TempDir(),
		"-agent.id", "agent-1", "-agent.publish.flush-interval=1s",
		"-scrape.config-file", writeFastScrapeConfig(t, "tls", target.addr)}, common...))
	testutil.Poll(t, dataTimeout, 200*time.Millisecond, func() (bool, string) {
		s, err := querySamples(agg.addr, `delivery_series{job="tls",i="0"}[1h]`, time.Now())
		if err != nil {
			return false, err.Error()
		}
		return len(s) >= 3, fmt.Sprintf("%d samples stored through TLS NATS, want 3", len(s))
	})

	// The wrong CA: the process starts (NATS may come later) but its
	// connection attempts fail the handshake.
	intruder := launchPharos(t, "agent-wrong-ca", withEphemeralPorts([]string{"-target=agent", "-data.dir", t.TempDir(),
		"-agent.id", "agent-2", "-nats.url", url, "-nats.tls.ca-file", otherFile, "-nats.token-file", token}), nil)
	testutil.Poll(t, startTimeout, 200*time.Millisecond, func() (bool, string) {
		b, err := os.ReadFile(intruder.logPath)
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(string(b), "certificate signed by unknown authority"), "no handshake failure logged yet"
	})
	intruder.requireRunning()
	if _, ok := intruder.findLog(func(ev logEvent) bool { return ev.Msg == "nats connected" }); ok {
		t.Fatal("an agent trusting another CA connected to NATS")
	}
}
