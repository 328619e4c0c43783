package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/fairlease/fairlease/broker"
	"github.com/fairlease/fairlease/broker/server"
	"github.com/fairlease/fairlease/broker/server/servertest"
)

// testCA issues certificates for 127.0.0.1, good for serving and dialling.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// config returns a mutual-TLS config for a node.
func (ca *testCA) config(t *testing.T, node string) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: node},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		RootCAs:      ca.pool, ClientCAs: ca.pool, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS13,
	}
}

// TestTLSPeers runs Raft over mutual TLS: the cluster forms and replicates,
// and a node whose certificate comes from another CA cannot take part.
func TestTLSPeers(t *testing.T) {
	ca := newTestCA(t, "fairlease test CA")
	c, ctx := testCluster(t, 3, false, func(cfg *server.Config) { cfg.TLS = ca.config(t, cfg.ID) })
	l, _ := c.Leader(ctx)
	addHosts(t, ctx, l.Server, 1, 8)
	checkReplicas(t, ctx, c, nil)

	// A stranger with a certificate from another CA is added to the
	// configuration but never receives the log.
	other := newTestCA(t, "someone else")
	cfg := server.TestConfig(t, "n9")
	cfg.TLS = other.config(t, "n9")
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	jctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	l.Server.Join(jctx, "n9", s.RaftAddr(), "")
	probe, cancel2 := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel2()
	err = servertest.WaitFor(probe, func() error {
		var hosts int
		s.Read(ctx, false, func(st *broker.State) error { hosts = len(st.Hosts()); return nil })
		if hosts == 0 {
			return context.DeadlineExceeded
		}
		return nil
	})
	if err == nil {
		t.Error("a node with a foreign certificate received the cluster's state")
	}
}
