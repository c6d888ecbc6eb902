package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/alertmanager/types"
)

// Headers set on each webhook request of a receiver with an hmac_secret.
const (
	// TimestampHeader carries the Unix time, in seconds, the request was
	// signed at. Receivers should refuse requests whose timestamp is too
	// far from their clock, which stops a captured request being replayed.
	TimestampHeader = "X-Pharos-Timestamp"
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256, keyed with
	// the receiver's hmac_secret, of the timestamp, a ".", and the body.
	// The timestamp is signed with the body so that it cannot be changed.
	SignatureHeader = "X-Pharos-Signature"
)

// PayloadVersion is the version of Alertmanager's webhook payload that
// Message follows.
const PayloadVersion = "4"

// Message is the JSON body of a webhook notification: Alertmanager's
// webhook payload (notify/webhook.Message), built from the same
// template.Data, so that any Alertmanager webhook receiver understands it.
type Message struct {
	*template.Data

	// Version is PayloadVersion.
	Version string `json:"version"`
	// GroupKey identifies the aggregation group, as Alertmanager computes
	// it: the route's key and the group labels.
	GroupKey string `json:"groupKey"`
	// TruncatedAlerts counts the alerts left out for max_alerts.
	TruncatedAlerts uint64 `json:"truncatedAlerts"`
}

// truncateAlerts keeps the first maxAlerts alerts (0 keeps all), as
// Alertmanager's webhook notifier does.
func truncateAlerts(maxAlerts uint64, alerts []*types.Alert) ([]*types.Alert, uint64) {
	if maxAlerts != 0 && uint64(len(alerts)) > maxAlerts {
		return alerts[:maxAlerts], uint64(len(alerts)) - maxAlerts
	}
	return alerts, 0
}

// Signature returns the SignatureHeader value for body sent at timestamp
// (TimestampHeader's value). A receiver verifies a request by computing it
// and comparing with hmac.Equal.
func Signature(secret []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	var b strings.Builder
	b.Grow(len("sha256=") + 2*sha256.Size)
	b.WriteString("sha256=")
	b.WriteString(hex.EncodeToString(mac.Sum(nil)))
	return b.String()
}

// VerifySignature reports, in constant time, whether signature is the
// SignatureHeader value for body sent at timestamp.
func VerifySignature(secret []byte, timestamp string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Signature(secret, timestamp, body)), []byte(signature))
}
