package ec2api

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
)

// Error is an EC2 API error: the code clients switch on, a message for
// people, and the HTTP status. The status matters to clients: the Go SDK
// and the aws CLI retry 500 and 503 (and RequestLimitExceeded) but not 4xx.
type Error struct {
	Code    string
	Message string
	Status  int
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Is matches on the code alone, so that errors.Is(err, &Error{Code: CodeAuthFailure})
// works whatever the message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Codes, spelled as EC2 spells them.
const (
	CodeAuthFailure                  = "AuthFailure"
	CodeRequestExpired               = "RequestExpired"
	CodeIncompleteSignature          = "IncompleteSignature"
	CodeMissingParameter             = "MissingParameter"
	CodeInvalidParameterValue        = "InvalidParameterValue"
	CodeInvalidParameterCombination  = "InvalidParameterCombination"
	CodeInvalidAction                = "InvalidAction"
	CodeUnknownParameter             = "UnknownParameter"
	CodeIdempotentParameterMismatch  = "IdempotentParameterMismatch"
	CodeInsufficientInstanceCapacity = "InsufficientInstanceCapacity"
	CodeInstanceLimitExceeded        = "InstanceLimitExceeded"
	CodeInvalidInstanceIDNotFound    = "InvalidInstanceID.NotFound"
	CodeInvalidInstanceIDMalformed   = "InvalidInstanceID.Malformed"
	CodeInvalidAMIIDNotFound         = "InvalidAMIID.NotFound"
	CodeInvalidAMIIDMalformed        = "InvalidAMIID.Malformed"
	CodeInvalidKeyPairNotFound       = "InvalidKeyPair.NotFound"
	CodeInvalidKeyPairDuplicate      = "InvalidKeyPair.Duplicate"
	CodeInvalidKeyPairFormat         = "InvalidKeyPair.Format"
	CodeUnauthorizedOperation        = "UnauthorizedOperation"
	CodeInvalidID                    = "InvalidID"
	CodeDryRunOperation              = "DryRunOperation"
	CodeInternalError                = "InternalError"
	CodeRequestLimitExceeded         = "RequestLimitExceeded"
	CodeUnavailable                  = "Unavailable"
)

func newError(status int, code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Status: status}
}

// AuthFailure is the answer to an unknown access key and to a wrong
// signature alike, so that a caller cannot probe which keys exist.
func AuthFailure(format string, args ...any) *Error {
	return newError(http.StatusUnauthorized, CodeAuthFailure, format, args...)
}

func RequestExpired(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, CodeRequestExpired, format, args...)
}

// IncompleteSignature reports a malformed signature: the message says which
// part is wrong.
func IncompleteSignature(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, CodeIncompleteSignature, format, args...)
}

func MissingParameter(name string) *Error {
	return newError(http.StatusBadRequest, CodeMissingParameter,
		"The request must contain the parameter %s", name)
}

// InvalidParameterValue names the parameter and the offending value.
func InvalidParameterValue(name, value, why string) *Error {
	return newError(http.StatusBadRequest, CodeInvalidParameterValue,
		"Value (%s) for parameter %s is invalid. %s", clip(value), name, why)
}

func InvalidParameterCombination(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, CodeInvalidParameterCombination, format, args...)
}

func InvalidAction(action string) *Error {
	return newError(http.StatusBadRequest, CodeInvalidAction,
		"The action %s is not valid for this web service.", clip(action))
}

func UnknownParameter(name string) *Error {
	return newError(http.StatusBadRequest, CodeUnknownParameter,
		"The parameter %s is not recognized", clip(name))
}

func IdempotentParameterMismatch(token string) *Error {
	return newError(http.StatusBadRequest, CodeIdempotentParameterMismatch,
		"The client token %s is already in use with different parameters.", clip(token))
}

// InsufficientInstanceCapacity is a 500 on purpose: EC2 sends it so, and both
// clients retry it with the same ClientToken, which the broker must expect.
func InsufficientInstanceCapacity(format string, args ...any) *Error {
	return newError(http.StatusInternalServerError, CodeInsufficientInstanceCapacity, format, args...)
}

func InstanceLimitExceeded(format string, args ...any) *Error {
	return newError(http.StatusBadRequest, CodeInstanceLimitExceeded, format, args...)
}

func InvalidInstanceIDNotFound(ids ...string) *Error {
	if len(ids) == 1 {
		return newError(http.StatusBadRequest, CodeInvalidInstanceIDNotFound,
			"The instance ID '%s' does not exist", clip(ids[0]))
	}
	return newError(http.StatusBadRequest, CodeInvalidInstanceIDNotFound,
		"The instance IDs '%s' do not exist", clip(strings.Join(ids, ", ")))
}

func InvalidInstanceIDMalformed(id string) *Error {
	return newError(http.StatusBadRequest, CodeInvalidInstanceIDMalformed,
		"Invalid id: %q", clip(id))
}

func InvalidAMIIDNotFound(id string) *Error {
	return newError(http.StatusBadRequest, CodeInvalidAMIIDNotFound,
		"The image id '[%s]' does not exist", clip(id))
}

func InvalidAMIIDMalformed(id string) *Error {
	return newError(http.StatusBadRequest, CodeInvalidAMIIDMalformed,
		"Invalid id: %q (expecting \"ami-...\")", clip(id))
}

func InvalidKeyPairNotFound(name string) *Error {
	return newError(http.StatusBadRequest, CodeInvalidKeyPairNotFound,
		"The key pair '%s' does not exist", clip(name))
}

func InvalidKeyPairDuplicate(name string) *Error {
	return newError(http.StatusBadRequest, CodeInvalidKeyPairDuplicate,
		"The keypair '%s' already exists.", clip(name))
}

func InvalidKeyPairFormat(why string) *Error {
	return newError(http.StatusBadRequest, CodeInvalidKeyPairFormat,
		"Key is not in valid OpenSSH public key format: %s", why)
}

func UnauthorizedOperation(format string, args ...any) *Error {
	return newError(http.StatusForbidden, CodeUnauthorizedOperation, format, args...)
}

func InvalidID(id string) *Error {
	return newError(http.StatusBadRequest, CodeInvalidID,
		"The ID '%s' is not valid", clip(id))
}

// DryRunOperation is how EC2 says "you may": DryRun=true requests that would
// have succeeded fail with it (HTTP 412).
func DryRunOperation() *Error {
	return newError(http.StatusPreconditionFailed, CodeDryRunOperation,
		"Request would have succeeded, but DryRun flag is set.")
}

// InternalError is for bugs only (the dispatcher sends it for a recovered
// panic); anything a client can cause is a 4xx.
func InternalError() *Error {
	return newError(http.StatusInternalServerError, CodeInternalError,
		"An internal error has occurred")
}

func RequestLimitExceeded() *Error {
	return newError(http.StatusServiceUnavailable, CodeRequestLimitExceeded, "Request limit exceeded.")
}

func Unavailable(format string, args ...any) *Error {
	return newError(http.StatusServiceUnavailable, CodeUnavailable, format, args...)
}

// clip keeps echoed client input short, so a huge parameter cannot make
// every error response huge.
func clip(s string) string {
	const max = 256
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "") + "..."
}

type errorResponse struct {
	XMLName   xml.Name     `xml:"Response"`
	Errors    []errorEntry `xml:"Errors>Error"`
	RequestID string       `xml:"RequestID"`
}

type errorEntry struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

// MarshalError renders e as EC2 does: a Response/Errors/Error document with
// the request ID beside it (note the upper-case RequestID, unlike responses).
func MarshalError(e *Error, requestID string) []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header[:len(xml.Header)-1])
	// Encoding plain strings cannot fail; invalid UTF-8 is escaped as U+FFFD.
	_ = xml.NewEncoder(&b).Encode(errorResponse{
		Errors:    []errorEntry{{Code: e.Code, Message: e.Message}},
		RequestID: requestID,
	})
	return b.Bytes()
}

// WriteError sends e to w.
func WriteError(w http.ResponseWriter, e *Error, requestID string) {
	body := MarshalError(e, requestID)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(e.Status)
	w.Write(body)
}
