package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/validation"

	"github.com/fairlease/fairlease/lease"
)

// EUNAVAILABLE is the code of a 503: the cluster cannot take the request
// now (no leader, shutting down); the answer carries Retry-After. It adds
// to lease's codes, which are about the request itself.
const EUNAVAILABLE = "unavailable"

// retryAfter is what a 503 asks clients to wait, in seconds: about one
// election.
const retryAfter = "1"

// Error is the body of every error answer, whichever layer produced it:
// a handler, authentication, huma's input validation, the router or a
// recovered panic.
type Error struct {
	Code    string `json:"code" enum:"invalid,unauthorized,forbidden,not_found,conflict,unavailable,internal" doc:"What went wrong, for programs to switch on"`
	Message string `json:"message" doc:"What went wrong, for a person"`
	Field   string `json:"field,omitempty" doc:"The input at fault, when known: a body field (quota.max_cores), a query or path parameter"`

	status  int
	headers http.Header
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// GetStatus is the HTTP status (huma.StatusError).
func (e *Error) GetStatus() int { return e.status }

// GetHeaders are headers to send with it (huma.HeadersError).
func (e *Error) GetHeaders() http.Header { return e.headers }

// Lease returns the error as a *lease.Error, the type clients match on.
func (e *Error) Lease() *lease.Error {
	return &lease.Error{Code: e.Code, Field: e.Field, Message: e.Message}
}

// statusOf maps an error code to its HTTP status.
func statusOf(code string) int {
	switch code {
	case lease.EINVALID:
		return http.StatusBadRequest
	case lease.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case lease.EFORBIDDEN:
		return http.StatusForbidden
	case lease.ENOTFOUND:
		return http.StatusNotFound
	case lease.ECONFLICT:
		return http.StatusConflict
	case EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// codeOf maps an HTTP status to an error code.
func codeOf(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return lease.EUNAUTHORIZED
	case status == http.StatusForbidden:
		return lease.EFORBIDDEN
	case status == http.StatusNotFound:
		return lease.ENOTFOUND
	case status == http.StatusConflict:
		return lease.ECONFLICT
	case status == http.StatusServiceUnavailable:
		return EUNAVAILABLE
	case status >= 400 && status < 500:
		return lease.EINVALID
	}
	return lease.EINTERNAL
}

func newError(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...), status: statusOf(code)}
}

func unavailable(msg string) *Error {
	e := newError(EUNAVAILABLE, "", "%s", msg)
	e.headers = http.Header{"Retry-After": {retryAfter}}
	return e
}

// fieldOf turns huma's location ("body.quota.max_cores", "path.id",
// "query.state") into the field name a client wrote.
func fieldOf(loc string) string {
	for _, p := range []string{"body", "path", "query", "header"} {
		if loc == p {
			return ""
		}
		if rest, ok := strings.CutPrefix(loc, p+"."); ok {
			return rest
		}
	}
	return loc
}

// humaError replaces huma.NewError, so that huma's own answers (validation,
// unreadable bodies) have our shape. 422 becomes 400: one status for bad
// input.
func humaError(status int, msg string, errs ...error) huma.StatusError {
	for _, err := range errs {
		var e *Error
		if errors.As(err, &e) {
			return e
		}
	}
	if status == http.StatusUnprocessableEntity {
		status = http.StatusBadRequest
	}
	e := &Error{status: status, Code: codeOf(status), Message: msg}
	var details []string
	for _, err := range errs {
		if err == nil {
			continue
		}
		var d *huma.ErrorDetail
		if errors.As(err, &d) {
			f := fieldOf(d.Location)
			var missing string
			if _, err := fmt.Sscanf(d.Message, validation.MsgExpectedRequiredProperty, &missing); err == nil {
				// huma places a missing property at its parent.
				f = strings.TrimPrefix(f+"."+missing, ".")
			}
			if e.Field == "" {
				e.Field = f
			}
			if f != "" {
				details = append(details, f+": "+d.Message)
			} else {
				details = append(details, d.Message)
			}
			continue
		}
		details = append(details, err.Error())
	}
	if len(details) > 0 {
		if e.Message != "" {
			e.Message += ": "
		}
		e.Message += strings.Join(details, "; ")
	}
	if e.Message == "" {
		e.Message = strings.ToLower(http.StatusText(status))
	}
	if status == http.StatusServiceUnavailable {
		e.headers = http.Header{"Retry-After": {retryAfter}}
	}
	return e
}

// The error model is a process-wide setting of huma; every API of this
// process shares it.
var installErrors = sync.OnceFunc(func() {
	huma.NewError = humaError
	huma.NewErrorWithContext = func(_ huma.Context, status int, msg string, errs ...error) huma.StatusError {
		return humaError(status, msg, errs...)
	}
})

// toError classifies any error from a handler or the backend. Client
// mistakes are *lease.Error with a 4xx code; cluster trouble is 503; the
// rest is a 500, logged by the caller.
func (a *API) toError(ctx context.Context, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var le *lease.Error
	if errors.As(err, &le) {
		return &Error{Code: le.Code, Field: le.Field, Message: le.Message, status: statusOf(le.Code)}
	}
	if a.cfg.LeaderAPI != nil {
		if url, ok := a.cfg.LeaderAPI(err); ok && url != "" {
			// A strong read must go to the leader: send the client there,
			// with the same path and query.
			loc := strings.TrimRight(url, "/") + requestInfo(ctx).uri
			e := newError(EUNAVAILABLE, "", "this node is not the leader; ask %s", loc)
			e.status = http.StatusTemporaryRedirect
			e.headers = http.Header{"Location": {loc}}
			return e
		}
	}
	var t interface{ Temporary() bool }
	switch {
	case a.cfg.Unavailable != nil && a.cfg.Unavailable(err),
		errors.As(err, &t) && t.Temporary(),
		errors.Is(err, context.DeadlineExceeded):
		return unavailable("the broker cluster cannot take requests now (" + err.Error() + "); try again")
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this.
		return unavailable("request canceled")
	}
	return &Error{Code: lease.EINTERNAL, Message: "internal error; the broker's log has the details", status: http.StatusInternalServerError}
}
