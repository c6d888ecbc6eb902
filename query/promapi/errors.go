package promapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/pharos-obs/pharos/query/limits"
)

// ErrUnavailable marks a storage error that means "not ready yet, try again" (for example a
// store still replaying its WAL). Wrap it in errors returned by the Queryable and the API
// answers 503 with errorType "unavailable", as Prometheus does for tsdb.ErrNotReady.
var ErrUnavailable = errors.New("storage unavailable")

// ErrorType is the value of the "errorType" field of an error response. The values are
// Prometheus's, because clients (Grafana, promtool) branch on them.
type ErrorType string

// The error types Prometheus's HTTP API uses.
const (
	ErrorBadData     ErrorType = "bad_data"
	ErrorExec        ErrorType = "execution"
	ErrorCanceled    ErrorType = "canceled"
	ErrorTimeout     ErrorType = "timeout"
	ErrorInternal    ErrorType = "internal"
	ErrorNotFound    ErrorType = "not_found"
	ErrorUnavailable ErrorType = "unavailable"
	ErrorCostLimit   ErrorType = "cost_limit"
)

// statusClientClosedRequest is nginx's non-standard 499, which Prometheus uses for a query
// canceled because the client went away.
const statusClientClosedRequest = 499

// StatusCode returns the HTTP status Prometheus sends with an error of type t.
func (t ErrorType) StatusCode() int {
	switch t {
	case ErrorBadData:
		return http.StatusBadRequest
	case ErrorExec, ErrorCostLimit:
		return http.StatusUnprocessableEntity
	case ErrorCanceled:
		return statusClientClosedRequest
	case ErrorTimeout, ErrorUnavailable:
		return http.StatusServiceUnavailable
	case ErrorNotFound:
		return http.StatusNotFound
	default:
		return http.StatusInternalServerError
	}
}

// apiError is an error with the type the response reports.
type apiError struct {
	typ ErrorType
	err error
}

func (e *apiError) Error() string { return fmt.Sprintf("%s: %s", e.typ, e.err) }

func (e *apiError) Unwrap() error { return e.err }

func badData(err error) *apiError { return &apiError{typ: ErrorBadData, err: err} }

// invalidParam words the error like Prometheus does, which users grep for.
func invalidParam(err error, param string) *apiError {
	return badData(fmt.Errorf("invalid parameter %q: %w", param, err))
}

// classify maps an error from the engine or the storage to the type Prometheus would report.
// The order matters: promql wraps context errors in its own types, and a storage error can
// wrap ErrUnavailable.
func classify(err error) *apiError {
	if err == nil {
		return nil
	}
	// A query limit of ours, before the rest: the fan-out wraps it in "aggregator … unavailable".
	if le := limits.As(err); le != nil {
		return &apiError{ErrorExec, le}
	}
	if _, ok := errors.AsType[promql.ErrQueryCanceled](err); ok {
		return &apiError{ErrorCanceled, err}
	}
	if _, ok := errors.AsType[promql.ErrQueryTimeout](err); ok {
		return &apiError{ErrorTimeout, err}
	}
	if _, ok := errors.AsType[promql.ErrTooManySeries](err); ok {
		return &apiError{ErrorCostLimit, err}
	}
	if _, ok := errors.AsType[promql.ErrTooManySamplesRead](err); ok {
		return &apiError{ErrorCostLimit, err}
	}
	if errors.Is(err, ErrUnavailable) {
		return &apiError{ErrorUnavailable, err}
	}
	if _, ok := errors.AsType[promql.ErrStorage](err); ok {
		return &apiError{ErrorInternal, err}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return &apiError{ErrorCanceled, err}
	case errors.Is(err, context.DeadlineExceeded):
		// Prometheus reports this as "execution" for the metadata endpoints because it sets no
		// deadline there; we do (Config.Timeout), so say what happened.
		return &apiError{ErrorTimeout, err}
	}
	return &apiError{ErrorExec, err}
}

// constructionError maps an error from building a query. Anything but a limit or a
// cancellation is a problem with the query text, hence bad_data, as in Prometheus.
func constructionError(err error) *apiError {
	if _, ok := errors.AsType[promql.ErrLimitAboveCeiling](err); ok {
		return badData(err)
	}
	if _, ok := errors.AsType[promql.ErrQueryTimeout](err); ok {
		return classify(err)
	}
	if _, ok := errors.AsType[promql.ErrQueryCanceled](err); ok {
		return classify(err)
	}
	return invalidParam(err, "query")
}

// limitError names the limit behind a timeout or the engine's sample limit, whose own
// messages do not say what to change, and returns the *limits.Error to count (nil when err
// is no limit). timeout is the request's: the flag's value, or the lower `timeout`
// parameter.
func (a *API) limitError(err *apiError, timeout time.Duration, byParam bool) *limits.Error {
	if le := limits.As(err.err); le != nil {
		return le
	}
	switch {
	case err.typ == ErrorTimeout:
		le := limits.TimeoutError(FlagTimeout, timeout, err.err.Error())
		if byParam {
			le.Flag = "timeout"
		}
		err.err = le
		return le
	case err.typ == ErrorExec:
		if tms, ok := errors.AsType[promql.ErrTooManySamples](err.err); ok {
			le := &limits.Error{Limit: limits.Samples, Flag: FlagMaxSamples, Value: strconv.Itoa(a.cfg.Limits.MaxSamples), Msg: tms.Error()}
			err.err = le
			return le
		}
	}
	return nil
}
