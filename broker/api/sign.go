package api

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
)

// Answers a caller can check came from the broker: when a request carries
// a NonceHeader, its answer carries SignatureHeader, an HMAC of the nonce,
// the status and the body keyed by the SHA-256 of the caller's token
// secret. Only the caller and the broker (which keeps that hash) know the
// key, so a host agent can refuse answers that did not come from its
// broker, and the nonce makes old answers useless to replay. Streams
// (image bytes, console logs) are not signed: image bytes are checked
// against their signed digest instead.
const (
	NonceHeader     = "Fairlease-Nonce"
	SignatureHeader = "Fairlease-Signature"
)

// AnswerSignature is the signature of an answer to a caller holding secret.
func AnswerSignature(secret, nonce string, status int, body []byte) string {
	m := hmac.New(sha256.New, Hash(secret))
	m.Write([]byte("fairlease-answer-v1\n" + nonce + "\n" + strconv.Itoa(status) + "\n"))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// signAnswers signs the answers of requests that ask for it.
func signAnswers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nonce := r.Header.Get(NonceHeader)
		_, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		_, secret, ok := ParseToken(strings.TrimSpace(tok))
		if nonce == "" || len(nonce) > 128 || !ok || strings.HasSuffix(r.URL.Path, "/blob") || strings.HasSuffix(r.URL.Path, "/log") {
			next.ServeHTTP(w, r)
			return
		}
		bw := &bufferedWriter{header: http.Header{}, status: http.StatusOK}
		next.ServeHTTP(bw, r)
		for k, vs := range bw.header {
			w.Header()[k] = vs
		}
		w.Header().Set(SignatureHeader, AnswerSignature(secret, nonce, bw.status, bw.body.Bytes()))
		w.WriteHeader(bw.status)
		w.Write(bw.body.Bytes())
	})
}

// bufferedWriter keeps an answer until it is signed.
type bufferedWriter struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }

func (b *bufferedWriter) WriteHeader(code int) {
	if !b.wroteHeader {
		b.status, b.wroteHeader = code, true
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.wroteHeader = true
	return b.body.Write(p)
}
