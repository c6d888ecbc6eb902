package notify

import (
	"sync"
	"time"
)

// Failure describes a notification that was not delivered.
type Failure struct {
	// Receiver is the receiver's name.
	Receiver string `json:"receiver"`
	// GroupKey is the payload's groupKey.
	GroupKey string `json:"groupKey"`
	// Time is when the notifier gave up on the notification.
	Time time.Time `json:"time"`
	// Error is the last error, without the receiver's URL.
	Error string `json:"error"`
	// Attempts is the number of requests made; 0 when the notification was
	// refused before any (queue full, breaker open, shutdown).
	Attempts int `json:"attempts"`
	// Alerts is the number of alerts the notification carried.
	Alerts int `json:"alerts"`
}

// ReceiverStatus is how a receiver's notifications have fared since the
// notifier started.
type ReceiverStatus struct {
	// Name is the receiver's name.
	Name string
	// Sent counts the notifications delivered.
	Sent uint64
	// Failed counts the notifications not delivered, whatever the reason
	// (the failure log's entries, including those it no longer holds).
	Failed uint64
	// LastSuccess and LastFailure are when a notification was last
	// delivered, or given up on; zero if never.
	LastSuccess time.Time
	LastFailure time.Time
	// LastError is the last failure's error, without the receiver's URL.
	LastError string
	// Breaker is the state of the receiver's circuit breaker: "closed",
	// "half-open" or "open".
	Breaker string
	// Queued is the number of notifications waiting for the receiver (the
	// one being delivered not included).
	Queued int
}

// failureLog keeps the latest failures in a fixed ring, so that a receiver
// that is down for hours costs no more memory than one that failed once.
type failureLog struct {
	mu   sync.Mutex
	ring []Failure
	next int // where the next failure goes
	full bool
}

func newFailureLog(size int) *failureLog {
	return &failureLog{ring: make([]Failure, size)}
}

func (l *failureLog) add(f Failure) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ring[l.next] = f
	l.next++
	if l.next == len(l.ring) {
		l.next, l.full = 0, true
	}
}

// list returns the failures kept, newest first.
func (l *failureLog) list() []Failure {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.next
	if l.full {
		n = len(l.ring)
	}
	out := make([]Failure, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, l.ring[(l.next-i+len(l.ring))%len(l.ring)])
	}
	return out
}
