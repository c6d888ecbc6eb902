package query

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/internal/tenant"
)

// Paths of the rules API (alerting/rules/api.go and the notifications
// status of internal/app) that a querier answers by asking the
// aggregators. The two sides meet only on the wire, as the read API does.
const (
	RulesPath         = "/api/v1/rules"
	AlertsPath        = "/api/v1/alerts"
	NotificationsPath = "/api/v1/status/notifications"
)

// DefaultRulesTimeout bounds one aggregator's answer when NewRemoteRules
// is given no timeout.
const DefaultRulesTimeout = 5 * time.Second

const (
	// rulesFanOut is how many aggregators are asked at once.
	rulesFanOut = 8
	// maxRulesResponseBytes bounds one aggregator's answer: rules with
	// their active alerts, a few hundred bytes each.
	maxRulesResponseBytes = 64 << 20
)

// ErrRulesUnavailable reports that no aggregator answered a rules API
// request: there were none to ask, or each of them failed.
var ErrRulesUnavailable = errors.New("rules unavailable")

// RemoteRules serves the rules API of a process that evaluates no rules
// (a querier) from the aggregators that do. In a cluster each rule group
// is evaluated by one aggregator, which alone lists it (a group appears on
// two only for a moment, while its ownership moves), so the answers are
// merged: groups by file and name, alerts by labels, notification
// receivers side by side with the aggregator they belong to.
//
// Each aggregator is asked with scope=local, which a querier's own
// handlers answer with 404 so that asking never loops; the aggregators'
// handlers ignore it. An aggregator that fails becomes a warning in the
// answer (Prometheus's "warnings"); when all fail, the answer is 503.
// The handlers may be called from any goroutine.
type RemoteRules struct {
	endpoints EndpointsFunc
	client    *http.Client
	timeout   time.Duration
}

// NewRemoteRules asks the aggregators endpoints returns at each request,
// each request bounded by timeout (DefaultRulesTimeout when not positive)
// and by the incoming request's context. The tenant of that context
// (WithTenant puts it there) is sent as X-Scope-OrgID, so that each
// aggregator answers with that tenant's groups and alerts.
func NewRemoteRules(endpoints EndpointsFunc, client *http.Client, timeout time.Duration) *RemoteRules {
	if client == nil {
		client = http.DefaultClient
	}
	if timeout <= 0 {
		timeout = DefaultRulesTimeout
	}
	c := *client
	c.Transport = tenant.Transport(c.Transport)
	return &RemoteRules{endpoints: endpoints, client: &c, timeout: timeout}
}

// RulesHandler serves GET /api/v1/rules: the groups of every aggregator,
// each group once, from the aggregator that evaluated it last. The
// filters (type, rule_name[], rule_group[], file[], match[],
// exclude_alerts) are passed on; pagination (group_limit,
// group_next_token) applies to the merged groups, with Prometheus's
// tokens.
func (r *RemoteRules) RulesHandler() http.Handler {
	return r.handler(RulesPath, func(q url.Values) (url.Values, func([]rulesAnswer) (any, error), error) {
		limit, token, err := groupPagination(q.Get("group_limit"), q.Get("group_next_token"))
		if err != nil {
			return nil, nil, err
		}
		q.Del("group_limit")
		q.Del("group_next_token")
		return q, func(answers []rulesAnswer) (any, error) { return mergeRules(answers, limit, token) }, nil
	})
}

// AlertsHandler serves GET /api/v1/alerts: the active alerts of every
// aggregator, an alert listed by two (while its group moves) once, with
// the earlier start.
func (r *RemoteRules) AlertsHandler() http.Handler {
	return r.handler(AlertsPath, func(q url.Values) (url.Values, func([]rulesAnswer) (any, error), error) {
		return q, mergeAlerts, nil
	})
}

// NotificationsHandler serves GET /api/v1/status/notifications: every
// aggregator's receivers, failures and Alertmanagers, each entry with an
// "instance" field naming its aggregator.
func (r *RemoteRules) NotificationsHandler() http.Handler {
	return r.handler(NotificationsPath, func(q url.Values) (url.Values, func([]rulesAnswer) (any, error), error) {
		return q, mergeNotifications, nil
	})
}

// rulesAnswer is one aggregator's data.
type rulesAnswer struct {
	ep   Endpoint
	data json.RawMessage
}

// apiEnvelope is the envelope of the Prometheus HTTP API, as read.
type apiEnvelope struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

// apiResponse is the envelope as written.
type apiResponse struct {
	Status    string   `json:"status"`
	Data      any      `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
}

// Error types of the answers; bad_data is relayed from the aggregators.
const (
	errorBadData     = "bad_data"
	errorUnavailable = "unavailable"
	errorNotFound    = "not_found"
	errorInternal    = "internal"
)

// statusError is an answer other than 200, with its error type.
type statusError struct {
	code    int
	errType string
	err     error
	// msg is the error as the aggregator put it, for relaying.
	msg string
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// prepareFunc checks a request's parameters, returns those to pass on and
// the merge of the answers.
type prepareFunc func(q url.Values) (url.Values, func([]rulesAnswer) (any, error), error)

func (r *RemoteRules) handler(path string, prepare prepareFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		q := req.URL.Query()
		if q.Get("scope") == "local" {
			// Another querier's fan-out reached this one: it has no rules
			// of its own, and asking on could loop.
			writeAPI(w, http.StatusNotFound, apiResponse{Status: "error", ErrorType: errorNotFound,
				Error: "this process evaluates no rules (rules run on aggregators with -rules.files, -rules.log-files or -rules.tenants-dir)"})
			return
		}
		q, merge, err := prepare(q)
		if err != nil {
			writeAPI(w, http.StatusBadRequest, apiResponse{Status: "error", ErrorType: errorBadData, Error: err.Error()})
			return
		}
		q.Set("scope", "local")
		answers, warnings, err := r.fanOut(req.Context(), path, q)
		if err != nil {
			writeAPIError(w, http.StatusServiceUnavailable, errorUnavailable, err)
			return
		}
		data, err := merge(answers)
		if err != nil {
			writeAPIError(w, http.StatusInternalServerError, errorInternal, err)
			return
		}
		writeAPI(w, http.StatusOK, apiResponse{Status: "success", Data: data, Warnings: warnings})
	})
}

// writeAPIError answers with err's own status when it has one, otherwise
// with code and errType.
func writeAPIError(w http.ResponseWriter, code int, errType string, err error) {
	if se, ok := errors.AsType[*statusError](err); ok {
		code, errType = se.code, se.errType
	}
	writeAPI(w, code, apiResponse{Status: "error", ErrorType: errType, Error: err.Error()})
}

func writeAPI(w http.ResponseWriter, code int, resp apiResponse) {
	b, err := json.Marshal(resp)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// fanOut asks every endpoint for path?q, a few at a time, and returns the
// answers in endpoint order and a warning per endpoint that failed. It
// fails when none answered: with the aggregators' 400 when they refused
// the parameters, with 404 when none of them evaluates rules, otherwise
// with ErrRulesUnavailable.
func (r *RemoteRules) fanOut(ctx context.Context, path string, q url.Values) ([]rulesAnswer, []string, error) {
	eps := r.endpoints()
	if len(eps) == 0 {
		return nil, nil, fmt.Errorf("%w: no healthy aggregators known", ErrRulesUnavailable)
	}
	answers := make([]json.RawMessage, len(eps))
	errs := make([]error, len(eps))
	sem := make(chan struct{}, rulesFanOut)
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			answers[i], errs[i] = r.get(ctx, ep, path, q)
		})
	}
	wg.Wait()

	var (
		out      []rulesAnswer
		warnings []string
		failed   []error
		notFound = 0
	)
	for i, ep := range eps {
		if errs[i] == nil {
			out = append(out, rulesAnswer{ep: ep, data: answers[i]})
			continue
		}
		if se, ok := errors.AsType[*statusError](errs[i]); ok {
			switch se.code {
			case http.StatusBadRequest:
				// Every aggregator gets the same parameters: they are bad.
				return nil, nil, &statusError{code: se.code, errType: cmp.Or(se.errType, errorBadData), err: errors.New(se.msg)}
			case http.StatusNotFound:
				notFound++
			}
		}
		name := ep.Name
		if ep.Addr != ep.Name {
			name += " (" + ep.Addr + ")"
		}
		err := fmt.Errorf("aggregator %s: %w", name, errs[i])
		warnings = append(warnings, err.Error())
		failed = append(failed, err)
	}
	if len(out) > 0 {
		return out, warnings, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrRulesUnavailable, err)
	}
	if notFound == len(eps) {
		// The same as a single process without rules says.
		return nil, nil, &statusError{code: http.StatusNotFound, errType: errorNotFound,
			err: fmt.Errorf("no aggregator evaluates rules: %w", errors.Join(failed...))}
	}
	return nil, nil, fmt.Errorf("%w: every aggregator failed: %w", ErrRulesUnavailable, errors.Join(failed...))
}

// get reads one aggregator's data.
func (r *RemoteRules) get(ctx context.Context, ep Endpoint, path string, q url.Values) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	u := url.URL{Scheme: "http", Host: ep.Addr, Path: path, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRulesResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(body) > maxRulesResponseBytes {
		return nil, fmt.Errorf("%s: answer larger than %d bytes", path, maxRulesResponseBytes)
	}
	var env apiEnvelope
	jsonErr := json.Unmarshal(body, &env)
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body[:min(len(body), 512)]))
		errType := ""
		if jsonErr == nil && env.Error != "" {
			msg, errType = env.Error, env.ErrorType
		}
		return nil, &statusError{code: resp.StatusCode, errType: errType, err: fmt.Errorf("%s: %s: %s", path, resp.Status, msg), msg: msg}
	}
	if jsonErr != nil {
		return nil, fmt.Errorf("decode %s: %w", path, jsonErr)
	}
	if env.Status != "success" {
		return nil, fmt.Errorf("%s: status %q: %s", path, env.Status, env.Error)
	}
	return env.Data, nil
}

// wireGroup is what the merge reads of a group; the rest passes as is.
type wireGroup struct {
	Name           string    `json:"name"`
	File           string    `json:"file"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

// ruleDiscovery is the data of /api/v1/rules, with the groups as the
// aggregators wrote them.
type ruleDiscovery struct {
	Groups         []json.RawMessage `json:"groups"`
	GroupNextToken string            `json:"groupNextToken,omitempty"`
}

// mergeRules keeps each group (file, name) once: the copy evaluated last.
// Only the owner evaluates a group; a copy on another aggregator (the
// owner before a hand-over, or the next one before its first evaluation)
// is older or was never evaluated (the zero time), and on a tie the first
// aggregator's copy stays. Groups are sorted by file and name, as an
// aggregator sorts them, and then paginated.
func mergeRules(answers []rulesAnswer, limit int, token string) (any, error) {
	type kept struct {
		g   wireGroup
		raw json.RawMessage
	}
	byKey := map[[2]string]*kept{}
	for _, a := range answers {
		var d ruleDiscovery
		if err := json.Unmarshal(a.data, &d); err != nil {
			return nil, fmt.Errorf("aggregator %s: decode rules: %w", a.ep.Name, err)
		}
		for _, raw := range d.Groups {
			var g wireGroup
			if err := json.Unmarshal(raw, &g); err != nil {
				return nil, fmt.Errorf("aggregator %s: decode rule group: %w", a.ep.Name, err)
			}
			key := [2]string{g.File, g.Name}
			if k, ok := byKey[key]; !ok || g.LastEvaluation.After(k.g.LastEvaluation) {
				byKey[key] = &kept{g: g, raw: raw}
			}
		}
	}
	groups := make([]*kept, 0, len(byKey))
	for _, k := range byKey {
		groups = append(groups, k)
	}
	slices.SortFunc(groups, func(a, b *kept) int {
		return cmp.Or(strings.Compare(a.g.File, b.g.File), strings.Compare(a.g.Name, b.g.Name))
	})
	res := ruleDiscovery{Groups: []json.RawMessage{}}
	found := token == ""
	for _, k := range groups {
		if !found {
			if groupNextToken(k.g.File, k.g.Name) != token {
				continue
			}
			found = true
		}
		if limit > 0 && len(res.Groups) == limit {
			res.GroupNextToken = groupNextToken(k.g.File, k.g.Name)
			break
		}
		res.Groups = append(res.Groups, k.raw)
	}
	if !found {
		return nil, &statusError{code: http.StatusBadRequest, errType: errorBadData,
			err: fmt.Errorf("invalid parameter \"group_next_token\": invalid group_next_token '%v'. were rule groups changed?", token)}
	}
	return res, nil
}

// groupPagination parses group_limit and group_next_token as Prometheus
// (and an aggregator) does; a limit of 0 means no pagination.
func groupPagination(limit, token string) (int, string, error) {
	if token != "" && limit == "" {
		return 0, "", errors.New(`invalid parameter "group_next_token": group_limit needs to be present in order to paginate over the groups`)
	}
	if limit == "" {
		return 0, "", nil
	}
	n, err := strconv.ParseInt(limit, 10, 32)
	if err != nil {
		return 0, "", fmt.Errorf(`invalid parameter "group_limit": group_limit needs to be a valid number: %w`, err)
	}
	if n <= 0 {
		return 0, "", errors.New(`invalid parameter "group_limit": group_limit needs to be greater than 0`)
	}
	return int(n), token, nil
}

// groupNextToken is Prometheus's group_next_token of a group.
func groupNextToken(file, group string) string {
	h := sha256.Sum256([]byte(file + ";" + group))
	return hex.EncodeToString(h[:])
}

// wireAlert is what the merge reads of an alert; the rest passes as is.
type wireAlert struct {
	Labels   labels.Labels `json:"labels"`
	ActiveAt *time.Time    `json:"activeAt"`
}

// alertDiscovery is the data of /api/v1/alerts.
type alertDiscovery struct {
	Alerts []json.RawMessage `json:"alerts"`
}

// mergeAlerts unites the aggregators' alerts. An alert with the same
// labels on two (its group is moving, and the next owner restored its
// `for` state) is kept once, with the earlier start. They are sorted by
// alert name and labels.
func mergeAlerts(answers []rulesAnswer) (any, error) {
	type kept struct {
		a   wireAlert
		raw json.RawMessage
	}
	byLabels := map[string]*kept{}
	for _, ans := range answers {
		var d alertDiscovery
		if err := json.Unmarshal(ans.data, &d); err != nil {
			return nil, fmt.Errorf("aggregator %s: decode alerts: %w", ans.ep.Name, err)
		}
		for _, raw := range d.Alerts {
			var a wireAlert
			if err := json.Unmarshal(raw, &a); err != nil {
				return nil, fmt.Errorf("aggregator %s: decode alert: %w", ans.ep.Name, err)
			}
			key := a.Labels.String()
			if k, ok := byLabels[key]; !ok || earlier(a.ActiveAt, k.a.ActiveAt) {
				byLabels[key] = &kept{a: a, raw: raw}
			}
		}
	}
	alerts := make([]*kept, 0, len(byLabels))
	for _, k := range byLabels {
		alerts = append(alerts, k)
	}
	slices.SortFunc(alerts, func(a, b *kept) int {
		return cmp.Or(strings.Compare(a.a.Labels.Get(labels.AlertName), b.a.Labels.Get(labels.AlertName)), labels.Compare(a.a.Labels, b.a.Labels))
	})
	res := alertDiscovery{Alerts: make([]json.RawMessage, len(alerts))}
	for i, k := range alerts {
		res.Alerts[i] = k.raw
	}
	return res, nil
}

// earlier reports whether a is before b; an unknown time is the latest.
func earlier(a, b *time.Time) bool {
	switch {
	case a == nil:
		return false
	case b == nil:
		return true
	}
	return a.Before(*b)
}

// notificationsData is the data of /api/v1/status/notifications, with each
// entry an object whose fields pass as they are.
type notificationsData struct {
	Receivers     []map[string]json.RawMessage `json:"receivers"`
	Failures      []map[string]json.RawMessage `json:"failures"`
	Alertmanagers []map[string]json.RawMessage `json:"alertmanagers"`
}

// mergeNotifications puts the aggregators' lists together, each entry
// with "instance", the aggregator's name: receivers sorted by name,
// Alertmanagers by URL, failures newest first (as one aggregator lists
// them), each then by instance.
func mergeNotifications(answers []rulesAnswer) (any, error) {
	res := notificationsData{
		Receivers:     []map[string]json.RawMessage{},
		Failures:      []map[string]json.RawMessage{},
		Alertmanagers: []map[string]json.RawMessage{},
	}
	for _, ans := range answers {
		var d notificationsData
		if err := json.Unmarshal(ans.data, &d); err != nil {
			return nil, fmt.Errorf("aggregator %s: decode notifications status: %w", ans.ep.Name, err)
		}
		instance, err := json.Marshal(ans.ep.Name)
		if err != nil {
			return nil, err
		}
		for _, list := range [][]map[string]json.RawMessage{d.Receivers, d.Failures, d.Alertmanagers} {
			for _, e := range list {
				if e != nil {
					e["instance"] = instance
				}
			}
		}
		res.Receivers = append(res.Receivers, nonNil(d.Receivers)...)
		res.Failures = append(res.Failures, nonNil(d.Failures)...)
		res.Alertmanagers = append(res.Alertmanagers, nonNil(d.Alertmanagers)...)
	}
	str := func(e map[string]json.RawMessage, field string) string {
		var s string
		_ = json.Unmarshal(e[field], &s)
		return s
	}
	when := func(e map[string]json.RawMessage) time.Time {
		var t time.Time
		_ = json.Unmarshal(e["time"], &t)
		return t
	}
	slices.SortStableFunc(res.Receivers, func(a, b map[string]json.RawMessage) int {
		return cmp.Or(strings.Compare(str(a, "name"), str(b, "name")), strings.Compare(str(a, "instance"), str(b, "instance")))
	})
	slices.SortStableFunc(res.Failures, func(a, b map[string]json.RawMessage) int {
		return cmp.Or(when(b).Compare(when(a)), strings.Compare(str(a, "receiver"), str(b, "receiver")), strings.Compare(str(a, "instance"), str(b, "instance")))
	})
	slices.SortStableFunc(res.Alertmanagers, func(a, b map[string]json.RawMessage) int {
		return cmp.Or(strings.Compare(str(a, "url"), str(b, "url")), strings.Compare(str(a, "instance"), str(b, "instance")))
	})
	return res, nil
}

// nonNil drops null entries.
func nonNil(es []map[string]json.RawMessage) []map[string]json.RawMessage {
	return slices.DeleteFunc(es, func(e map[string]json.RawMessage) bool { return e == nil })
}
