package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Raft transport settings: connections pooled per peer (pipelined appends
// use their own), and how long one RPC may take.
const (
	transportPool    = 3
	transportTimeout = 10 * time.Second
)

// newTransport returns the TCP transport on cfg.RaftAddr, over TLS when
// cfg.TLS is set.
func newTransport(cfg Config, logger hclog.Logger) (*raft.NetworkTransport, error) {
	var adv net.Addr
	if cfg.AdvertiseAddr != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("server: advertise address %s: %w", cfg.AdvertiseAddr, err)
		}
		adv = a
	}
	if cfg.TLS == nil {
		t, err := raft.NewTCPTransportWithLogger(cfg.RaftAddr, adv, transportPool, transportTimeout, logger)
		if err != nil {
			return nil, fmt.Errorf("server: raft transport on %s: %w", cfg.RaftAddr, err)
		}
		return t, nil
	}
	ln, err := net.Listen("tcp", cfg.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("server: raft transport on %s: %w", cfg.RaftAddr, err)
	}
	if adv == nil {
		adv = ln.Addr()
	}
	sl := &tlsStreamLayer{ln: tls.NewListener(ln, cfg.TLS), adv: adv, cfg: cfg.TLS}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: sl, MaxPool: transportPool, Timeout: transportTimeout, Logger: logger,
	}), nil
}

// tlsStreamLayer is a raft.StreamLayer over TLS, so broker peers can talk
// across untrusted networks. Both sides present certificates when the
// config asks for client certificates.
type tlsStreamLayer struct {
	ln  net.Listener
	adv net.Addr
	cfg *tls.Config
}

func (t *tlsStreamLayer) Accept() (net.Conn, error) { return t.ln.Accept() }
func (t *tlsStreamLayer) Close() error              { return t.ln.Close() }
func (t *tlsStreamLayer) Addr() net.Addr            { return t.adv }

// Dial connects to a peer and completes the handshake before raft writes,
// so that a bad certificate fails here rather than as a broken RPC.
func (t *tlsStreamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	cfg := t.cfg.Clone()
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(string(addr))
		if err != nil {
			return nil, fmt.Errorf("server: dial %s: %w", addr, err)
		}
		cfg.ServerName = host
	}
	d := &net.Dialer{Timeout: timeout}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", string(addr))
	if err != nil {
		return nil, fmt.Errorf("server: dial %s: %w", addr, err)
	}
	return c, nil
}

// newRaftLogger routes hashicorp/raft's hclog output into slog.
func newRaftLogger(l *slog.Logger, level string) hclog.Logger {
	lv := hclog.LevelFromString(level)
	if strings.EqualFold(level, "off") {
		lv = hclog.Off
	}
	if lv == hclog.NoLevel {
		lv = hclog.Warn
	}
	return hclog.New(&hclog.LoggerOptions{Name: "raft", Level: lv, Output: &slogWriter{l: l}, JSONFormat: true})
}

// slogWriter takes hclog's JSON lines and logs them through slog.
type slogWriter struct{ l *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimSpace(p), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			w.l.Info(string(line), "component", "raft")
			continue
		}
		lv := slog.LevelInfo
		switch m["@level"] {
		case "trace", "debug":
			lv = slog.LevelDebug
		case "warn":
			lv = slog.LevelWarn
		case "error":
			lv = slog.LevelError
		}
		msg, _ := m["@message"].(string)
		attrs := []any{"component", "raft"}
		keys := make([]string, 0, len(m))
		for k := range m {
			if !strings.HasPrefix(k, "@") {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			attrs = append(attrs, k, m[k])
		}
		w.l.Log(context.Background(), lv, msg, attrs...)
	}
	return len(p), nil
}
