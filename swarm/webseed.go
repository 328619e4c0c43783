package swarm

import (
	"fmt"
	"net/http"
	"os"
)

// ServeWebSeed serves the image at path as a BEP 19 web seed: plain HTTP
// with Range requests, which is all a web seed is. The caller's router
// checks the token in the URL first. A single-file torrent's url-list entry
// is this handler's full URL (no trailing slash).
func ServeWebSeed(w http.ResponseWriter, r *http.Request, path string) {
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, "image not available", http.StatusNotFound)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		http.Error(w, "image not available", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// WebSeedHandler serves one file as a web seed at any path, after
// authorize (nil = everyone) accepts the last path segment as a token.
// Tests and small setups use it; the broker mounts ServeWebSeed itself.
func WebSeedHandler(path string, authorize func(token string) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if authorize != nil && !authorize(lastSegment(r.URL.Path)) {
			http.Error(w, fmt.Sprintf("token not authorized for %s", r.URL.Path), http.StatusForbidden)
			return
		}
		ServeWebSeed(w, r, path)
	})
}
