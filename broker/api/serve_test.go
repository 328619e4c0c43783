package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fairlease/fairlease/broker/api"
	"github.com/fairlease/fairlease/broker/api/apitest"
)

// TestServe serves plain HTTP and TLS on loopback and shuts down when the
// context ends.
func TestServe(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	tests := []struct {
		name       string
		cert, key  string
		scheme     string
		wantServed bool
		wantErr    bool
	}{
		{"plain", "", "", "http", true, false},
		{"tls", certFile, keyFile, "https", true, false},
		{"half a tls config", certFile, "", "https", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := api.New(api.Config{Backend: apitest.NewFake(), Logger: apitest.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- a.ServeListener(ctx, ln, tt.cert, tt.key) }()
			hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			resp, err := hc.Get(tt.scheme + "://" + ln.Addr().String() + "/healthz")
			if served := err == nil && resp.StatusCode == 200; served != tt.wantServed {
				t.Errorf("served %v (%v), want %v", served, err, tt.wantServed)
			}
			if err == nil {
				resp.Body.Close()
			}
			cancel()
			select {
			case err := <-done:
				if (err != nil) != tt.wantErr {
					t.Errorf("ServeListener: %v, want error %v", err, tt.wantErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("ServeListener did not return after the context ended")
			}
		})
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fairlease test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
