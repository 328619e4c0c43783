package hostagent

import (
	"crypto/subtle"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"strconv"

	"github.com/fairlease/fairlease/hostagent/virt"
	"github.com/fairlease/fairlease/lease"
)

// LogKeyHeader carries the log key the broker registered for this host.
const LogKeyHeader = "Fairlease-Log-Key"

// maxLog bounds one answer: the tail of a long console log is what
// matters, and the agent must not stream gigabytes for a stuck guest.
const maxLog = 1 << 20

func (a *Agent) logHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/vms/{lease}/{index}/log", a.serveLog)
	return mux
}

// serveLog answers GET /v1/vms/{lease}/{index}/log?tail=N with the last N
// bytes (at most 1 MiB, the default) of the VM's console log.
func (a *Agent) serveLog(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(LogKeyHeader)), []byte(a.logKey)) != 1 {
		http.Error(w, "missing or wrong "+LogKeyHeader+" header", http.StatusUnauthorized)
		return
	}
	tail := int64(maxLog)
	if s := r.URL.Query().Get("tail"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "tail must be a number of bytes >= 0", http.StatusBadRequest)
			return
		}
		tail = min(n, maxLog)
	}
	id := lease.ID(r.PathValue("lease"))
	index, err := strconv.Atoi(r.PathValue("index"))
	if err != nil || !validName(string(id), 64) {
		http.Error(w, "no such VM on this host", http.StatusNotFound)
		return
	}
	name := virt.DomainName(id, index)
	doms, err := a.hv.List(r.Context())
	if err != nil {
		http.Error(w, "list domains: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if !slices.ContainsFunc(doms, func(d virt.Domain) bool { return d.Name == name }) {
		http.Error(w, "no such VM on this host", http.StatusNotFound)
		return
	}
	path, err := a.hv.ConsoleLog(name)
	if err != nil {
		http.Error(w, "console log: "+err.Error(), http.StatusNotFound)
		return
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		http.Error(w, "the VM has logged nothing yet", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "open console log: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, "stat console log: "+err.Error(), http.StatusInternalServerError)
		return
	}
	// The log grows while we read: send a fixed window of it.
	n := min(tail, st.Size())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	if _, err := io.Copy(w, io.NewSectionReader(f, st.Size()-n, n)); err != nil {
		a.log.Debug("send console log", "domain", name, "err", err)
	}
}
