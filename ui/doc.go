// Package ui will serve the embedded browser dashboard (static assets via
// go:embed) and its handlers. Nothing is implemented yet: see the dashboard
// issue.
package ui
