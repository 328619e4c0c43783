package ec2api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SigV4 verification, server side, after
// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html.
// The core takes the time as an argument; it never reads the clock.

const (
	sigAlgorithm    = "AWS4-HMAC-SHA256"
	sigService      = "ec2"
	sigTerminator   = "aws4_request"
	amzDateFormat   = "20060102T150405Z"
	scopeDateFmt    = "20060102"
	unsignedPayload = "UNSIGNED-PAYLOAD"

	// MaxSkew is how far a request's time may be from the server's.
	MaxSkew = 15 * time.Minute
	// maxPresignExpiry is SigV4's upper bound for X-Amz-Expires (7 days).
	maxPresignExpiry = 7 * 24 * time.Hour
	// maxSignedHeaders bounds the work an unauthenticated request can cause.
	maxSignedHeaders = 64
)

// emptySHA256 is the payload hash of an empty body.
var emptySHA256 = hex.EncodeToString(sha256.New().Sum(nil))

// SecretLookup returns the secret access key of an access key ID.
type SecretLookup func(accessKeyID string) (secret string, ok bool)

// Credential is what a verified signature vouches for.
type Credential struct {
	AccessKeyID string
	Region      string    // from the credential scope; any region is accepted
	Time        time.Time // the signing time
	Presigned   bool
}

// sigRequest is an Authorization header or a presigned query, parsed.
type sigRequest struct {
	accessKeyID   string
	scopeDate     string
	region        string
	signedHeaders []string
	signature     string
	date          time.Time
	expires       time.Duration // presigned only
	presigned     bool
}

// Verify checks r's SigV4 signature (Authorization header, or presigned query
// string) over body, the bytes already read from r.Body, at time now.
// The error is always an EC2 error, ready to send.
func Verify(r *http.Request, body []byte, now time.Time, lookup SecretLookup) (Credential, *Error) {
	sr, e := parseSigRequest(r)
	if e != nil {
		return Credential{}, e
	}
	if e := checkTime(sr, now); e != nil {
		return Credential{}, e
	}
	secret, ok := lookup(sr.accessKeyID)
	if !ok {
		return Credential{}, AuthFailure("AWS was not able to validate the provided access credentials")
	}

	hashes, e := payloadHashes(r, body, sr.presigned)
	if e != nil {
		return Credential{}, e
	}
	want, err := hex.DecodeString(sr.signature)
	if err != nil { // parseSigRequest checked the form already
		return Credential{}, IncompleteSignature("Signature is not hex")
	}
	key := signingKey(secret, sr.scopeDate, sr.region, sigService)
	matched := false
	for _, h := range hashes {
		got := hmacSHA256(key, stringToSign(sr, canonicalRequest(r, sr, h)))
		if hmac.Equal(got, want) {
			matched = true
		}
	}
	if !matched {
		return Credential{}, AuthFailure("AWS was not able to validate the provided access credentials")
	}
	return Credential{AccessKeyID: sr.accessKeyID, Region: sr.region, Time: sr.date, Presigned: sr.presigned}, nil
}

func parseSigRequest(r *http.Request) (*sigRequest, *Error) {
	q := r.URL.Query()
	auth := r.Header.Get("Authorization")
	presigned := q.Has("X-Amz-Algorithm") || q.Has("X-Amz-Signature") || q.Has("X-Amz-Credential")
	switch {
	case auth != "" && presigned:
		return nil, InvalidParameterCombination("Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be given")
	case auth != "":
		return parseAuthorization(r, auth)
	case presigned:
		return parsePresigned(q)
	case q.Has("AWSAccessKeyId") || q.Has("SignatureVersion"):
		return nil, AuthFailure("Signature version 2 is not supported; sign requests with AWS4-HMAC-SHA256")
	}
	return nil, AuthFailure("missing authentication: the request carries neither an Authorization header nor X-Amz-Algorithm query parameters")
}

func parseAuthorization(r *http.Request, auth string) (*sigRequest, *Error) {
	alg, rest, _ := strings.Cut(strings.TrimSpace(auth), " ")
	if alg != sigAlgorithm {
		return nil, IncompleteSignature("Authorization header: unsupported algorithm %q; only %s is supported", clip(alg), sigAlgorithm)
	}
	got := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		part = strings.TrimSpace(part)
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, IncompleteSignature("Authorization header: component %q is not a key=value pair", clip(part))
		}
		switch k {
		case "Credential", "SignedHeaders", "Signature":
		default:
			return nil, IncompleteSignature("Authorization header: unknown component %q", clip(k))
		}
		if _, dup := got[k]; dup {
			return nil, IncompleteSignature("Authorization header: %s given twice", k)
		}
		got[k] = v
	}
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if _, ok := got[k]; !ok {
			return nil, IncompleteSignature("Authorization header requires '%s' parameter", k)
		}
	}
	cred, signed, sig := got["Credential"], got["SignedHeaders"], got["Signature"]
	sr := &sigRequest{}
	if e := sr.setCredential(cred); e != nil {
		return nil, e
	}
	if e := sr.setSignedHeaders(signed); e != nil {
		return nil, e
	}
	if e := sr.setSignature(sig); e != nil {
		return nil, e
	}
	if d := r.Header.Get("X-Amz-Date"); d != "" {
		t, err := time.Parse(amzDateFormat, d)
		if err != nil {
			return nil, IncompleteSignature("X-Amz-Date %q is not in the form %s", clip(d), amzDateFormat)
		}
		sr.date = t
	} else if d := r.Header.Get("Date"); d != "" {
		t, err := http.ParseTime(d)
		if err != nil {
			return nil, IncompleteSignature("Date header %q is not an HTTP date", clip(d))
		}
		sr.date = t.UTC()
	} else {
		return nil, IncompleteSignature("Authorization requires an X-Amz-Date or Date header")
	}
	return sr, nil
}

func parsePresigned(q url.Values) (*sigRequest, *Error) {
	one := func(name string) (string, *Error) {
		vs := q[name]
		switch {
		case len(vs) == 0 || vs[0] == "":
			return "", IncompleteSignature("presigned request requires the %s query parameter", name)
		case len(vs) > 1:
			return "", IncompleteSignature("query parameter %s given more than once", name)
		}
		return vs[0], nil
	}
	alg, e := one("X-Amz-Algorithm")
	if e != nil {
		return nil, e
	}
	if alg != sigAlgorithm {
		return nil, IncompleteSignature("X-Amz-Algorithm %q is not supported; only %s is", clip(alg), sigAlgorithm)
	}
	sr := &sigRequest{presigned: true}
	for _, step := range []struct {
		name string
		set  func(string) *Error
	}{
		{"X-Amz-Credential", sr.setCredential},
		{"X-Amz-SignedHeaders", sr.setSignedHeaders},
		{"X-Amz-Signature", sr.setSignature},
		{"X-Amz-Date", func(v string) *Error {
			t, err := time.Parse(amzDateFormat, v)
			if err != nil {
				return IncompleteSignature("X-Amz-Date %q is not in the form %s", clip(v), amzDateFormat)
			}
			sr.date = t
			return nil
		}},
		{"X-Amz-Expires", func(v string) *Error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 || n > int64(maxPresignExpiry/time.Second) {
				return IncompleteSignature("X-Amz-Expires %q must be a number of seconds from 1 to %d", clip(v), int64(maxPresignExpiry/time.Second))
			}
			sr.expires = time.Duration(n) * time.Second
			return nil
		}},
	} {
		v, e := one(step.name)
		if e != nil {
			return nil, e
		}
		if e := step.set(v); e != nil {
			return nil, e
		}
	}
	return sr, nil
}

// setCredential parses AKID/YYYYMMDD/region/ec2/aws4_request.
func (sr *sigRequest) setCredential(v string) *Error {
	parts := strings.Split(v, "/")
	if len(parts) != 5 {
		return IncompleteSignature("Credential %q must have the form ACCESS_KEY_ID/YYYYMMDD/REGION/ec2/aws4_request", clip(v))
	}
	akid, date, region, service, term := parts[0], parts[1], parts[2], parts[3], parts[4]
	switch {
	case akid == "":
		return IncompleteSignature("Credential %q has an empty access key ID", clip(v))
	case len(date) != 8 || !isDigits(date):
		return IncompleteSignature("Credential %q: date %q is not YYYYMMDD", clip(v), clip(date))
	case region == "":
		return IncompleteSignature("Credential %q has an empty region", clip(v))
	case term != sigTerminator:
		return IncompleteSignature("Credential %q must end in %s", clip(v), sigTerminator)
	case service != sigService:
		// Well formed but for another service: a signature for S3 must not
		// be replayable here.
		return AuthFailure("Credential should be scoped to correct service: '%s'", sigService)
	}
	sr.accessKeyID, sr.scopeDate, sr.region = akid, date, region
	return nil
}

func (sr *sigRequest) setSignedHeaders(v string) *Error {
	if v == "" {
		return IncompleteSignature("SignedHeaders is empty")
	}
	names := strings.Split(v, ";")
	if len(names) > maxSignedHeaders {
		return IncompleteSignature("SignedHeaders lists %d headers; at most %d are allowed", len(names), maxSignedHeaders)
	}
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if n == "" || n != strings.ToLower(n) || !isToken(n) {
			return IncompleteSignature("SignedHeaders: %q is not a lower-case header name", clip(n))
		}
		if seen[n] {
			return IncompleteSignature("SignedHeaders: %q is listed twice", clip(n))
		}
		seen[n] = true
	}
	if !seen["host"] {
		// Without the host, a signature could be replayed at another endpoint.
		return IncompleteSignature("SignedHeaders must include 'host'")
	}
	sr.signedHeaders = names
	return nil
}

func (sr *sigRequest) setSignature(v string) *Error {
	if len(v) != 2*sha256.Size || !isLowerHex(v) {
		return IncompleteSignature("Signature must be %d lower-case hex digits", 2*sha256.Size)
	}
	sr.signature = v
	return nil
}

func checkTime(sr *sigRequest, now time.Time) *Error {
	if sr.date.Format(scopeDateFmt) != sr.scopeDate {
		return IncompleteSignature("Credential scope date %s does not match the request date %s", sr.scopeDate, sr.date.Format(amzDateFormat))
	}
	if sr.presigned {
		if now.Before(sr.date.Add(-MaxSkew)) {
			return RequestExpired("Request is not yet valid: signed for %s, server time %s", sr.date.Format(amzDateFormat), now.UTC().Format(amzDateFormat))
		}
		if now.After(sr.date.Add(sr.expires)) {
			return RequestExpired("Request has expired: signed at %s for %s, server time %s", sr.date.Format(amzDateFormat), sr.expires, now.UTC().Format(amzDateFormat))
		}
		return nil
	}
	if d := now.Sub(sr.date); d > MaxSkew || d < -MaxSkew {
		return RequestExpired("Request has expired: signed at %s, server time %s, more than %s apart", sr.date.Format(amzDateFormat), now.UTC().Format(amzDateFormat), MaxSkew)
	}
	return nil
}

// payloadHashes returns the payload hashes the signature may have been made
// with. An X-Amz-Content-Sha256 header is used only when it is the body's
// real hash; UNSIGNED-PAYLOAD only when there is no body, so that no
// request ever carries parameters the signature does not cover.
func payloadHashes(r *http.Request, body []byte, presigned bool) ([]string, *Error) {
	sum := sha256.Sum256(body)
	real := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" {
		switch {
		case h == unsignedPayload && len(body) == 0:
		case h == unsignedPayload:
			return nil, AuthFailure("X-Amz-Content-Sha256 is UNSIGNED-PAYLOAD but the request has a body; the body must be signed")
		case h != real:
			return nil, AuthFailure("X-Amz-Content-Sha256 does not match the SHA-256 of the body")
		}
		return []string{h}, nil
	}
	if presigned && len(body) == 0 {
		// Presigners use UNSIGNED-PAYLOAD (botocore) or the empty hash (the
		// Go SDK, if asked): with no body they mean the same.
		return []string{unsignedPayload, emptySHA256}, nil
	}
	return []string{real}, nil
}

func canonicalRequest(r *http.Request, sr *sigRequest, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(canonicalURI(r.URL))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery, sr.presigned))
	b.WriteByte('\n')
	for _, name := range sr.signedHeaders {
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(canonicalHeaderValue(r, name))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(sr.signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// canonicalURI URI-encodes the already escaped path once more, as SigV4
// clients do for every service but S3.
func canonicalURI(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	return uriEncode(p, false)
}

// canonicalQuery decodes each pair and encodes it again strictly, sorted by
// key and then value. '+' decodes to a space, as in the Go SDK's signer;
// botocore never sends a raw '+'.
func canonicalQuery(raw string, presigned bool) string {
	type pair struct{ k, v string }
	var pairs []pair
	for kv := range strings.SplitSeq(raw, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, v = queryUnescapeLoose(k), queryUnescapeLoose(v)
		if presigned && k == "X-Amz-Signature" {
			continue
		}
		pairs = append(pairs, pair{uriEncode(k, true), uriEncode(v, true)})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// queryUnescapeLoose keeps a malformed escape as it is: the signature will
// not match and the request fails as AuthFailure, never worse.
func queryUnescapeLoose(s string) string {
	u, err := url.QueryUnescape(s)
	if err != nil {
		return s
	}
	return u
}

func canonicalHeaderValue(r *http.Request, name string) string {
	var vals []string
	switch name {
	case "host":
		vals = []string{hostForSigning(r.Host)}
	case "content-length":
		vals = r.Header.Values("Content-Length")
		if len(vals) == 0 && r.ContentLength >= 0 {
			vals = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	case "transfer-encoding":
		vals = r.TransferEncoding
	default:
		vals = r.Header.Values(name)
	}
	out := make([]string, len(vals)) // vals may be the request's own slice
	for i, v := range vals {
		out[i] = collapseSpaces(v)
	}
	return strings.Join(out, ",")
}

// hostForSigning drops a default port: clients sign the host without it.
func hostForSigning(h string) string {
	if s, ok := strings.CutSuffix(h, ":80"); ok {
		return s
	}
	if s, ok := strings.CutSuffix(h, ":443"); ok {
		return s
	}
	return h
}

func collapseSpaces(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "  ") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

func stringToSign(sr *sigRequest, canonical string) string {
	h := sha256.Sum256([]byte(canonical))
	return sigAlgorithm + "\n" +
		sr.date.Format(amzDateFormat) + "\n" +
		sr.scopeDate + "/" + sr.region + "/" + sigService + "/" + sigTerminator + "\n" +
		hex.EncodeToString(h[:])
}

func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, sigTerminator)
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// uriEncode is SigV4's UriEncode: everything but unreserved characters is
// %XX-encoded with upper-case hex; '/' too when encodeSlash.
func uriEncode(s string, encodeSlash bool) string {
	const hexdig = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) || (c == '/' && !encodeSlash) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdig[c>>4])
		b.WriteByte(hexdig[c&15])
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// isToken reports whether s is an RFC 7230 token, the syntax of header names.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) || strings.IndexByte("!#$%&'*+^`|", c) >= 0 {
			continue
		}
		return false
	}
	return true
}
