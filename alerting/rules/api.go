package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"

	"github.com/pharos-obs/pharos/internal/tenant"
)

// GroupSource is what RulesHandler and AlertsHandler read: the rule
// groups of a tenant, sorted by file and name. *Manager implements it.
type GroupSource interface {
	TenantGroups(id string) []*promrules.Group
}

// The types below are the JSON of Prometheus's /api/v1/rules and
// /api/v1/alerts (web/api/v1/api.go), field for field, so that Grafana and
// other Prometheus clients read them, and so that a querier can decode
// and merge the answers of several aggregators.

// Response is the envelope of every answer of the Prometheus HTTP API.
type Response struct {
	Status    string `json:"status"` // "success" or "error"
	Data      any    `json:"data,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
}

// RuleDiscovery is the data of /api/v1/rules.
type RuleDiscovery struct {
	RuleGroups     []*RuleGroup `json:"groups"`
	GroupNextToken string       `json:"groupNextToken,omitempty"`
}

// RuleGroup is one group with its rules, in file order.
type RuleGroup struct {
	Name string `json:"name"`
	File string `json:"file"`
	// Rules holds AlertingRule and RecordingRule values, in one list to
	// keep the order of the file.
	Rules          []any     `json:"rules"`
	Interval       float64   `json:"interval"`
	Limit          int       `json:"limit"`
	EvaluationTime float64   `json:"evaluationTime"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

// AlertingRule is an alerting rule with its active alerts.
type AlertingRule struct {
	State          string               `json:"state"` // "inactive", "pending", "firing" or "unknown"
	Name           string               `json:"name"`
	Query          string               `json:"query"`
	Duration       float64              `json:"duration"`
	KeepFiringFor  float64              `json:"keepFiringFor"`
	Labels         labels.Labels        `json:"labels"`
	Annotations    labels.Labels        `json:"annotations"`
	Alerts         []*Alert             `json:"alerts"`
	Health         promrules.RuleHealth `json:"health"`
	LastError      string               `json:"lastError,omitempty"`
	EvaluationTime float64              `json:"evaluationTime"`
	LastEvaluation time.Time            `json:"lastEvaluation"`
	Type           string               `json:"type"` // "alerting"
}

// RecordingRule is a recording rule.
type RecordingRule struct {
	Name           string               `json:"name"`
	Query          string               `json:"query"`
	Labels         labels.Labels        `json:"labels"`
	Health         promrules.RuleHealth `json:"health"`
	LastError      string               `json:"lastError,omitempty"`
	EvaluationTime float64              `json:"evaluationTime"`
	LastEvaluation time.Time            `json:"lastEvaluation"`
	Type           string               `json:"type"` // "recording"
}

// AlertDiscovery is the data of /api/v1/alerts.
type AlertDiscovery struct {
	Alerts []*Alert `json:"alerts"`
}

// Alert is one active alert.
type Alert struct {
	Labels          labels.Labels `json:"labels"`
	Annotations     labels.Labels `json:"annotations"`
	State           string        `json:"state"`
	ActiveAt        *time.Time    `json:"activeAt,omitempty"`
	KeepFiringSince *time.Time    `json:"keepFiringSince,omitempty"`
	Value           string        `json:"value"`
}

// Error types of the Prometheus API that these handlers answer with.
const errorBadData = "bad_data"

// RulesHandler serves GET /api/v1/rules as Prometheus does, with its
// parameters: type=alert|record, rule_name[], rule_group[], file[],
// match[], exclude_alerts, group_limit and group_next_token. It lists the
// groups of the request's tenant only (tenant.FromContext: the default
// tenant unless a middleware such as query.WithTenant resolved another).
func RulesHandler(src GroupSource) http.Handler {
	p := newParser()
	return apiHandler(func(r *http.Request) (any, error) {
		if err := r.ParseForm(); err != nil {
			return nil, fmt.Errorf("error parsing form values: %w", err)
		}
		set := func(values []string) map[string]struct{} {
			s := make(map[string]struct{}, len(values))
			for _, v := range values {
				s[v] = struct{}{}
			}
			return s
		}
		ruleNames := set(r.Form["rule_name[]"])
		groupNames := set(r.Form["rule_group[]"])
		files := set(r.Form["file[]"])

		matcherSets, err := p.ParseMetricSelectors(r.Form["match[]"])
		if err != nil {
			return nil, err
		}
		for _, ms := range matcherSets {
			if !hasNonEmptyMatcher(ms) {
				return nil, errors.New("match[] must contain at least one non-empty matcher")
			}
		}

		q := r.URL.Query()
		typ := strings.ToLower(q.Get("type"))
		if typ != "" && typ != "alert" && typ != "record" {
			return nil, invalidParam("type", fmt.Errorf("not supported value %q", typ))
		}
		wantAlerting := typ == "" || typ == "alert"
		wantRecording := typ == "" || typ == "record"

		excludeAlerts := false
		if s := strings.ToLower(q.Get("exclude_alerts")); s != "" {
			if excludeAlerts, err = strconv.ParseBool(s); err != nil {
				return nil, invalidParam("exclude_alerts", fmt.Errorf("error converting exclude_alerts: %w", err))
			}
		}
		maxGroups, nextToken, err := pagination(q.Get("group_limit"), q.Get("group_next_token"))
		if err != nil {
			return nil, err
		}

		res := &RuleDiscovery{RuleGroups: []*RuleGroup{}}
		foundToken := false
		for _, g := range src.TenantGroups(tenant.FromContext(r.Context())) {
			if maxGroups > 0 && nextToken != "" && !foundToken {
				if nextToken != groupToken(g.File(), g.Name()) {
					continue
				}
				foundToken = true
			}
			if !in(groupNames, g.Name()) || !in(files, g.File()) {
				continue
			}
			rg := &RuleGroup{
				Name:           g.Name(),
				File:           g.File(),
				Rules:          []any{},
				Interval:       g.Interval().Seconds(),
				Limit:          g.Limit(),
				EvaluationTime: g.GetEvaluationTime().Seconds(),
				LastEvaluation: g.GetLastEvaluation(),
			}
			for _, rule := range g.Rules(matcherSets...) {
				if !in(ruleNames, rule.Name()) {
					continue
				}
				lastError := ""
				if err := rule.LastError(); err != nil {
					lastError = err.Error()
				}
				switch rule := rule.(type) {
				case *promrules.AlertingRule:
					if !wantAlerting {
						continue
					}
					var alerts []*Alert
					if !excludeAlerts {
						alerts = apiAlerts(rule.ActiveAlerts())
					}
					rg.Rules = append(rg.Rules, AlertingRule{
						State:          rule.State().String(),
						Name:           rule.Name(),
						Query:          rule.Query().String(),
						Duration:       rule.HoldDuration().Seconds(),
						KeepFiringFor:  rule.KeepFiringFor().Seconds(),
						Labels:         rule.Labels(),
						Annotations:    rule.Annotations(),
						Alerts:         alerts,
						Health:         rule.Health(),
						LastError:      lastError,
						EvaluationTime: rule.GetEvaluationDuration().Seconds(),
						LastEvaluation: rule.GetEvaluationTimestamp(),
						Type:           "alerting",
					})
				case *promrules.RecordingRule:
					if !wantRecording {
						continue
					}
					rg.Rules = append(rg.Rules, RecordingRule{
						Name:           rule.Name(),
						Query:          rule.Query().String(),
						Labels:         rule.Labels(),
						Health:         rule.Health(),
						LastError:      lastError,
						EvaluationTime: rule.GetEvaluationDuration().Seconds(),
						LastEvaluation: rule.GetEvaluationTimestamp(),
						Type:           "recording",
					})
				}
			}
			// A group whose rules were all filtered out is left out.
			if len(rg.Rules) == 0 {
				continue
			}
			if maxGroups > 0 && len(res.RuleGroups) == maxGroups {
				// One more group than the page holds: there is a next page.
				res.GroupNextToken = groupToken(g.File(), g.Name())
				break
			}
			res.RuleGroups = append(res.RuleGroups, rg)
		}
		if maxGroups > 0 && nextToken != "" && !foundToken {
			return nil, invalidParam("group_next_token", fmt.Errorf("invalid group_next_token '%v'. were rule groups changed?", nextToken))
		}
		return res, nil
	})
}

// AlertsHandler serves GET /api/v1/alerts as Prometheus does: the active
// alerts of every alerting rule of the request's tenant (as RulesHandler).
func AlertsHandler(src GroupSource) http.Handler {
	return apiHandler(func(r *http.Request) (any, error) {
		res := &AlertDiscovery{Alerts: []*Alert{}}
		for _, g := range src.TenantGroups(tenant.FromContext(r.Context())) {
			for _, rule := range g.Rules() {
				if ar, ok := rule.(*promrules.AlertingRule); ok {
					res.Alerts = append(res.Alerts, apiAlerts(ar.ActiveAlerts())...)
				}
			}
		}
		return res, nil
	})
}

// apiAlerts converts alerts as Prometheus's rulesAlertsToAPIAlerts does,
// ordered by labels (Prometheus leaves them in map order).
func apiAlerts(as []*promrules.Alert) []*Alert {
	as = sortedAlerts(as)
	out := make([]*Alert, len(as))
	for i, a := range as {
		out[i] = &Alert{
			Labels:      a.Labels,
			Annotations: a.Annotations,
			State:       a.State.String(),
			ActiveAt:    &a.ActiveAt,
			Value:       strconv.FormatFloat(a.Value, 'e', -1, 64),
		}
		if !a.KeepFiringSince.IsZero() {
			out[i].KeepFiringSince = &a.KeepFiringSince
		}
	}
	return out
}

func hasNonEmptyMatcher(ms []*labels.Matcher) bool {
	for _, m := range ms {
		if m != nil && !m.Matches("") {
			return true
		}
	}
	return false
}

// in reports whether v is in set; an empty set lets everything in.
func in(set map[string]struct{}, v string) bool {
	if len(set) == 0 {
		return true
	}
	_, ok := set[v]
	return ok
}

// pagination parses group_limit and group_next_token as Prometheus does;
// a limit of 0 means no pagination.
func pagination(limit, token string) (int, string, error) {
	if token != "" && limit == "" {
		return 0, "", invalidParam("group_next_token", errors.New("group_limit needs to be present in order to paginate over the groups"))
	}
	if limit == "" {
		return 0, "", nil
	}
	n, err := strconv.ParseInt(limit, 10, 32)
	if err != nil {
		return 0, "", invalidParam("group_limit", fmt.Errorf("group_limit needs to be a valid number: %w", err))
	}
	if n <= 0 {
		return 0, "", invalidParam("group_limit", errors.New("group_limit needs to be greater than 0"))
	}
	return int(n), token, nil
}

// groupToken is Prometheus's group_next_token for a group.
func groupToken(file, group string) string {
	h := sha256.Sum256([]byte(file + ";" + group))
	return hex.EncodeToString(h[:])
}

func invalidParam(name string, err error) error {
	return fmt.Errorf("invalid parameter %q: %w", name, err)
}

// apiHandler answers GET (and HEAD) with f's data in the API envelope, or
// with f's error as bad_data (400): the only errors these endpoints have
// are bad parameters.
func apiHandler(f func(*http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		data, err := f(r)
		resp, code := Response{Status: "success", Data: data}, http.StatusOK
		if err != nil {
			resp, code = Response{Status: "error", ErrorType: errorBadData, Error: err.Error()}, http.StatusBadRequest
		}
		b, err := json.Marshal(resp)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write(b)
	})
}
