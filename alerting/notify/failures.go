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
