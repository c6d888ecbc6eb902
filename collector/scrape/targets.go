package scrape

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"
)

// TargetsPath is where the agent serves Prometheus's targets API.
const TargetsPath = "/api/v1/targets"

// activeTarget and droppedTarget have the JSON shape of Prometheus's
// /api/v1/targets, so tools written for it read Pharos's agents too.
type activeTarget struct {
	DiscoveredLabels   map[string]string `json:"discoveredLabels"`
	Labels             map[string]string `json:"labels"`
	ScrapePool         string            `json:"scrapePool"`
	ScrapeURL          string            `json:"scrapeUrl"`
	GlobalURL          string            `json:"globalUrl"`
	LastError          string            `json:"lastError"`
	LastScrape         time.Time         `json:"lastScrape"`
	LastScrapeDuration float64           `json:"lastScrapeDuration"`
	Health             string            `json:"health"`
	ScrapeInterval     string            `json:"scrapeInterval"`
	ScrapeTimeout      string            `json:"scrapeTimeout"`
}

type droppedTarget struct {
	DiscoveredLabels map[string]string `json:"discoveredLabels"`
	ScrapePool       string            `json:"scrapePool"`
}

type targetsData struct {
	ActiveTargets       []activeTarget  `json:"activeTargets"`
	DroppedTargets      []droppedTarget `json:"droppedTargets"`
	DroppedTargetCounts map[string]int  `json:"droppedTargetCounts"`
}

// TargetsHandler serves /api/v1/targets with Prometheus's parameters: state
// (active, dropped, any; default any) and scrapePool.
func (s *Scraper) TargetsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		state := strings.ToLower(q.Get("state"))
		if state == "" {
			state = "any"
		}
		if state != "any" && state != "active" && state != "dropped" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{
				"status": "error", "errorType": "bad_data", "error": "invalid state " + strconv.Quote(state) + ": want active, dropped or any"})
			return
		}
		pool := q.Get("scrapePool")
		data := targetsData{ActiveTargets: []activeTarget{}, DroppedTargets: []droppedTarget{}, DroppedTargetCounts: s.scrape.TargetsDroppedCounts()}
		var lb labels.Builder
		if state != "dropped" {
			for _, name := range sortedPools(s.scrape.TargetsActive(), pool) {
				for _, t := range s.scrape.TargetsActive()[name] {
					data.ActiveTargets = append(data.ActiveTargets, active(name, t, &lb))
				}
			}
		}
		if state != "active" {
			for _, name := range sortedPools(s.scrape.TargetsDropped(), pool) {
				for _, t := range s.scrape.TargetsDropped()[name] {
					data.DroppedTargets = append(data.DroppedTargets, droppedTarget{
						DiscoveredLabels: t.DiscoveredLabels(&lb).Map(), ScrapePool: name})
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
	})
}

func active(pool string, t *promscrape.Target, lb *labels.Builder) activeTarget {
	at := activeTarget{
		DiscoveredLabels:   t.DiscoveredLabels(lb).Map(),
		Labels:             t.Labels(lb).Map(),
		ScrapePool:         pool,
		ScrapeURL:          t.URL().String(),
		GlobalURL:          t.URL().String(),
		LastScrape:         t.LastScrape(),
		LastScrapeDuration: t.LastScrapeDuration().Seconds(),
		Health:             string(t.Health()),
		ScrapeInterval:     t.GetValue(model.ScrapeIntervalLabel),
		ScrapeTimeout:      t.GetValue(model.ScrapeTimeoutLabel),
	}
	if err := t.LastError(); err != nil {
		at.LastError = err.Error()
	}
	return at
}

func sortedPools(m map[string][]*promscrape.Target, only string) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		if only == "" || n == only {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}
