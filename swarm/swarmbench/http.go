package swarmbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// httpPort serves the image, for the HTTP baseline and as a web seed.
const httpPort = "8080"

// imageServer serves one file and counts the bytes it sent.
type imageServer struct {
	path string
	sent atomic.Int64
}

func (s *imageServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, err := os.Open(s.path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	http.ServeContent(&countingWriter{ResponseWriter: w, n: &s.sent}, r, filepath.Base(s.path), st.ModTime(), f)
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

// serveImage listens on addr:httpPort and serves image at every path
// until ctx ends.
func serveImage(ctx context.Context, addr, image string) (*imageServer, func(), error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, httpPort))
	if err != nil {
		return nil, nil, fmt.Errorf("swarmbench: serve the image: %w", err)
	}
	s := &imageServer{path: image}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return s, func() { srv.Close() }, nil
}

// runHTTPSeed serves the image until the parent says stop.
func runHTTPSeed(ctx context.Context, spec NodeSpec, c *conn) error {
	s, stop, err := serveImage(ctx, spec.Addr, spec.Image)
	if err != nil {
		return err
	}
	defer stop()
	if err := c.send(message{Event: "ready"}); err != nil {
		return err
	}
	if err := c.wait(ctx, "go"); err != nil {
		return err
	}
	cpu0 := cpuSeconds()
	if err := c.wait(ctx, "stop"); err != nil {
		return err
	}
	return c.send(message{Event: "stats", Served: s.sent.Load(), CPUSeconds: cpuSeconds() - cpu0})
}

// runHTTPGet fetches the whole image from the seed in one GET once the
// parent says go.
func runHTTPGet(ctx context.Context, spec NodeSpec, c *conn) error {
	url := "http://" + net.JoinHostPort(spec.Seed, httpPort) + "/image"
	dest := filepath.Join(spec.Dir, "image")
	// No proxy from the environment: the seed is on the bridge.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	if err := c.send(message{Event: "ready"}); err != nil {
		return err
	}
	if err := c.wait(ctx, "go"); err != nil {
		return err
	}
	start, cpu0 := time.Now(), cpuSeconds()
	n, err := httpGet(ctx, client, url, dest, c)
	if err != nil {
		return err
	}
	if n != spec.Size {
		return fmt.Errorf("swarmbench: got %d bytes from %s, want %d", n, url, spec.Size)
	}
	if err := c.send(message{Event: "done", Bytes: n, Seconds: time.Since(start).Seconds()}); err != nil {
		return err
	}
	if err := c.wait(ctx, "stop"); err != nil {
		return err
	}
	cpu := cpuSeconds() - cpu0
	sum, size, err := fileSHA256(dest)
	if err != nil {
		return err
	}
	return c.send(message{Event: "stats", Bytes: size, SHA256: sum, CPUSeconds: cpu})
}

func httpGet(ctx context.Context, client *http.Client, url, dest string, c *conn) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("swarmbench: fetch the image over HTTP: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("swarmbench: fetch %s: %s", url, resp.Status)
	}
	f, err := os.Create(dest)
	if err != nil {
		return 0, err
	}
	var got atomic.Int64
	stop := make(chan struct{})
	go reportProgress(c, got.Load, stop)
	defer close(stop)
	w := bufio.NewWriterSize(f, 1<<20)
	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				f.Close()
				return got.Load(), err
			}
			if got.Add(int64(n)) == int64(n) {
				c.send(message{Event: "progress", Bytes: int64(n)}) // first byte
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			f.Close()
			return got.Load(), fmt.Errorf("swarmbench: fetch the image over HTTP: %w", rerr)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return got.Load(), err
	}
	return got.Load(), f.Close()
}
