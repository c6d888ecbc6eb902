package scrape

import (
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/metadata"
	promscrape "github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
)

// FamilyMetadataAppender is an appender that also takes a metric family's
// metadata without a sample (publish's appender does).
type FamilyMetadataAppender interface {
	AppendFamilyMetadata(family string, m metadata.Metadata)
}

// metadataInterval is how often a target's metadata goes out with one of
// its scrapes. The scrape manager does not pass metadata with each sample
// (its AppendMetadata option costs every sample a family look-up); the
// targets' metadata is sent per family instead, as remote write 1.0 sends
// it, and the publisher leaves out what it sent lately for the tenant.
const metadataInterval = time.Minute

// targetMetadata records when each target's metadata was last sent.
type targetMetadata struct {
	mu   sync.Mutex
	sent map[*promscrape.Target]time.Time
	// sweepAt is the size of sent that triggers dropping the targets not
	// seen for a while (targets that went away).
	sweepAt int
}

func newTargetMetadata() *targetMetadata {
	return &targetMetadata{sent: map[*promscrape.Target]time.Time{}, sweepAt: 1024}
}

// due reports whether t's metadata should go out now, and if so records
// it as sent.
func (m *targetMetadata) due(t *promscrape.Target, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if last, ok := m.sent[t]; ok && now.Sub(last) < metadataInterval {
		return false
	}
	m.sent[t] = now
	if len(m.sent) >= m.sweepAt {
		for t, last := range m.sent {
			if now.Sub(last) > 10*metadataInterval {
				delete(m.sent, t)
			}
		}
		m.sweepAt = max(1024, 2*len(m.sent))
	}
	return true
}

// metadataAppender adds its target's metric family metadata to the
// transaction on Commit, when due: the scrape has been parsed by then, so
// a new target's metadata goes out with its first scrape.
type metadataAppender struct {
	storage.AppenderV2
	fa     FamilyMetadataAppender
	target *promscrape.Target
	sent   *targetMetadata
}

func (a *metadataAppender) Commit() error {
	if a.sent.due(a.target, time.Now()) {
		for _, m := range a.target.ListMetadata() {
			if m.MetricFamily == "" {
				continue
			}
			a.fa.AppendFamilyMetadata(m.MetricFamily, metadata.Metadata{Type: m.Type, Help: m.Help, Unit: m.Unit})
		}
	}
	return a.AppenderV2.Commit()
}
