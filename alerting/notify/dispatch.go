package notify

import (
	"container/heap"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/alertmanager/types"
	"github.com/prometheus/common/model"
)

// notification is one payload on its way to a receiver. The dispatcher
// hands it over and must not touch msg afterwards; the receiver calls done
// exactly once, from its own goroutine, with no lock held.
type notification struct {
	receiver string
	groupKey string
	msg      *Message
	alerts   int
	done     func(delivered bool)
}

// notifyReason is Alertmanager's notify.NotifyReason; its String is sent
// as the payload's notification_reason.
type notifyReason int

const (
	reasonNone notifyReason = iota
	reasonFirstNotification
	reasonNewAlertsInGroup
	reasonNewResolvedAlerts
	reasonAllAlertsResolved
	reasonRepeatIntervalElapsed
)

func (r notifyReason) String() string {
	switch r {
	case reasonNone:
		return "none"
	case reasonFirstNotification:
		return "first notification"
	case reasonNewAlertsInGroup:
		return "new alerts added"
	case reasonNewResolvedAlerts:
		return "some alerts resolved"
	case reasonAllAlertsResolved:
		return "all alerts resolved"
	case reasonRepeatIntervalElapsed:
		return "repeat interval elapsed"
	default:
		return "unknown"
	}
}

type fpSet = map[model.Fingerprint]struct{}

// sentEntry is what Alertmanager's notification log keeps per group and
// receiver: which alerts were firing and resolved when the group was last
// notified successfully, and when.
type sentEntry struct {
	firing, resolved fpSet
	at               time.Time
}

// needsUpdate is Alertmanager's DedupStage.needsUpdate: whether, and why, a
// group whose alerts are now firing and resolved must be notified, given
// the last successful notification (nil: none yet).
func needsUpdate(last *sentEntry, firing, resolved fpSet, sendResolved bool, repeat time.Duration, now time.Time) notifyReason {
	if last == nil {
		if len(firing) > 0 {
			return reasonFirstNotification
		}
		return reasonNone // fired and resolved before anyone was told
	}
	if !isSubset(last.firing, firing) {
		if len(last.firing) == 0 {
			return reasonFirstNotification
		}
		return reasonNewAlertsInGroup
	}
	if len(firing) == 0 {
		// Sent whatever send_resolved says, so that the entry forgets the
		// firing alerts; the receiver stage drops the payload if needed.
		if len(last.firing) > 0 {
			return reasonAllAlertsResolved
		}
		return reasonNone
	}
	if sendResolved && !isSubset(last.resolved, resolved) {
		return reasonNewResolvedAlerts
	}
	if last.at.Before(now.Add(-repeat)) {
		return reasonRepeatIntervalElapsed
	}
	return reasonNone
}

func isSubset(set, subset fpSet) bool {
	for k := range subset {
		if _, ok := set[k]; !ok {
			return false
		}
	}
	return true
}

type groupID struct {
	route int
	fp    model.Fingerprint // of the group labels
}

// aggrGroup is Alertmanager's aggregation group: the alerts of one route
// with the same group labels, notified together on one timer.
type aggrGroup struct {
	id     groupID
	route  *route
	labels model.LabelSet
	key    string
	alerts map[model.Fingerprint]*types.Alert

	next    time.Time // next flush
	heapIdx int
	// inflight is set while a notification of the group is queued or being
	// delivered. Alertmanager's flush blocks until delivery ends; here the
	// group skips its flushes instead, so it never has two notifications
	// out and a slow receiver holds at most one queue slot per group.
	inflight bool
	last     *sentEntry
}

// insert stores a, merging it with the alert it updates as Alertmanager's
// alert store does when their activity overlaps. Stored alerts are never
// modified in place: flushes copy them, and notifications in flight refer
// to the copies.
func (ag *aggrGroup) insert(fp model.Fingerprint, a *types.Alert) {
	if old, ok := ag.alerts[fp]; ok {
		if (a.EndsAt.After(old.StartsAt) && a.EndsAt.Before(old.EndsAt)) ||
			(a.StartsAt.After(old.StartsAt) && a.StartsAt.Before(old.EndsAt)) {
			a = old.Merge(a)
		}
	}
	ag.alerts[fp] = a
}

type receiverOpts struct {
	sendResolved bool
	maxAlerts    uint64
}

// dispatcher routes alerts into aggregation groups and flushes each group
// on Alertmanager's timers. One goroutine (Notifier.running) feeds it and
// runs its timers; receivers report back through notification.done. mu
// guards all its state; under mu it only calls enqueue, which must not
// block and must not call done.
type dispatcher struct {
	root      *route
	receivers map[string]receiverOpts
	maxGroups int
	tmpl      *template.Template
	enqueue   func(*notification) bool
	m         *metrics

	mu     sync.Mutex
	groups map[groupID]*aggrGroup
	due    groupHeap // every group, by next flush
}

func newDispatcher(root *route, receivers map[string]receiverOpts, maxGroups int, tmpl *template.Template, enqueue func(*notification) bool, m *metrics) *dispatcher {
	return &dispatcher{
		root:      root,
		receivers: receivers,
		maxGroups: maxGroups,
		tmpl:      tmpl,
		enqueue:   enqueue,
		m:         m,
		groups:    map[groupID]*aggrGroup{},
	}
}

// ingest puts a into the group of every route it matches and returns how
// many groups it could not be put into for -notify.max-groups.
func (d *dispatcher) ingest(a *types.Alert, now time.Time) (limited int) {
	fp := a.Fingerprint()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.root.match(a.Labels) {
		gl := r.groupLabels(a.Labels)
		id := groupID{route: r.idx, fp: gl.Fingerprint()}
		ag, ok := d.groups[id]
		if !ok {
			if d.maxGroups > 0 && len(d.groups) >= d.maxGroups {
				d.m.dropped.WithLabelValues(reasonGroupLimit).Inc()
				limited++
				continue
			}
			ag = &aggrGroup{
				id:     id,
				route:  r,
				labels: gl,
				key:    groupKey(r, gl),
				alerts: map[model.Fingerprint]*types.Alert{},
				next:   now.Add(r.groupWait),
			}
			// As in Alertmanager: an alert that has been firing for longer
			// than group_wait (e.g. after a restart) is not held back again.
			if a.StartsAt.Add(r.groupWait).Before(now) {
				ag.next = now
			}
			d.groups[id] = ag
			heap.Push(&d.due, ag)
			d.m.groups.Set(float64(len(d.groups)))
		}
		ag.insert(fp, a)
	}
	return limited
}

// nextFlush returns when the earliest group is due, if there is a group.
func (d *dispatcher) nextFlush() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.due) == 0 {
		return time.Time{}, false
	}
	return d.due[0].next, true
}

// flushDue flushes every group due at now. Each group's next flush is
// group_interval after this one, whatever the flush does, as in
// Alertmanager.
func (d *dispatcher) flushDue(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.due) > 0 && !d.due[0].next.After(now) {
		ag := d.due[0]
		ag.next = now.Add(ag.route.groupInterval)
		heap.Fix(&d.due, 0)
		d.flush(ag, now)
	}
}

// flush is Alertmanager's aggrGroup.flush followed by its notification
// pipeline (dedup, send_resolved filter, truncation), minus the delivery,
// which the receiver does and reports through done. d.mu is held.
func (d *dispatcher) flush(ag *aggrGroup, now time.Time) {
	if ag.inflight {
		return
	}
	var (
		alerts   = make(types.AlertSlice, 0, len(ag.alerts))
		resolved = make([]*types.Alert, 0, len(ag.alerts))
		firingFP = make(fpSet, len(ag.alerts))
		resolvFP = make(fpSet)
	)
	for fp, a := range ag.alerts {
		c := *a
		if c.ResolvedAt(now) {
			resolved = append(resolved, &c)
			resolvFP[fp] = struct{}{}
		} else {
			// A firing alert is sent without its expected end, so that it
			// does not turn resolved on the receiver's clock.
			c.EndsAt = time.Time{}
			firingFP[fp] = struct{}{}
		}
		alerts = append(alerts, &c)
	}
	sort.Stable(alerts)

	opts := d.receivers[ag.route.receiver]
	reason := needsUpdate(ag.last, firingFP, resolvFP, opts.sendResolved, ag.route.repeatInterval, now)
	if reason == reasonNone {
		// Nothing the receiver needs to hear; resolved alerts it was never
		// told about are forgotten, as Alertmanager does.
		d.removeResolved(ag, resolved)
		return
	}
	entry := &sentEntry{firing: firingFP, resolved: resolvFP}
	send := []*types.Alert(alerts)
	if !opts.sendResolved {
		if len(firingFP) == 0 {
			// All resolved and the receiver does not want to know: record
			// it as notified without a request, as Alertmanager's retry
			// stage does.
			entry.at = now
			d.succeeded(ag, entry, resolved)
			return
		}
		send = make([]*types.Alert, 0, len(firingFP))
		for _, a := range alerts {
			if !a.ResolvedAt(now) {
				send = append(send, a)
			}
		}
	}
	send, truncated := truncateAlerts(opts.maxAlerts, send)
	n := &notification{
		receiver: ag.route.receiver,
		groupKey: ag.key,
		msg: &Message{
			Data:            d.tmpl.Data(ag.route.receiver, ag.labels, nil, reason.String(), send...),
			Version:         PayloadVersion,
			GroupKey:        ag.key,
			TruncatedAlerts: truncated,
		},
		alerts: len(send),
	}
	n.done = func(delivered bool) {
		d.mu.Lock()
		defer d.mu.Unlock()
		ag.inflight = false
		if delivered {
			entry.at = time.Now()
			d.succeeded(ag, entry, resolved)
		}
	}
	ag.inflight = true
	if !d.enqueue(n) {
		// Counted and recorded by enqueue; the next flush tries again
		// because the entry was not updated.
		ag.inflight = false
	}
}

// succeeded records a notification of ag and forgets the resolved alerts
// it carried. d.mu is held.
func (d *dispatcher) succeeded(ag *aggrGroup, entry *sentEntry, resolved []*types.Alert) {
	ag.last = entry
	d.removeResolved(ag, resolved)
}

// removeResolved deletes the resolved alerts that have not been updated
// since they were flushed (one may have fired again meanwhile), and drops
// the group once it is empty. d.mu is held.
func (d *dispatcher) removeResolved(ag *aggrGroup, resolved []*types.Alert) {
	for _, a := range resolved {
		fp := a.Fingerprint()
		if cur, ok := ag.alerts[fp]; ok && cur.UpdatedAt.Equal(a.UpdatedAt) {
			delete(ag.alerts, fp)
		}
	}
	if len(ag.alerts) > 0 || d.groups[ag.id] != ag {
		return
	}
	delete(d.groups, ag.id)
	heap.Remove(&d.due, ag.heapIdx)
	d.m.groups.Set(float64(len(d.groups)))
}

// groupCount returns the number of aggregation groups.
func (d *dispatcher) groupCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.groups)
}

// groupHeap orders groups by their next flush.
type groupHeap []*aggrGroup

func (h groupHeap) Len() int           { return len(h) }
func (h groupHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h groupHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}

func (h *groupHeap) Push(x any) {
	ag := x.(*aggrGroup)
	ag.heapIdx = len(*h)
	*h = append(*h, ag)
}

func (h *groupHeap) Pop() any {
	old := *h
	ag := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	ag.heapIdx = -1
	return ag
}
