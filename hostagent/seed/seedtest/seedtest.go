// Package seedtest makes SSH keys for tests of seeds and VMs.
package seedtest

import (
	"crypto/ed25519"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// KeyPair returns an Ed25519 key pair derived from n, so tests are
// repeatable: the public key in authorized_keys form (with a comment)
// and the private key in OpenSSH PEM form.
func KeyPair(n byte) (authorizedKey, privatePEM string) {
	var s [ed25519.SeedSize]byte
	for i := range s {
		s[i] = n + byte(i)
	}
	priv := ed25519.NewKeyFromSeed(s[:])
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		panic(err) // cannot happen for an Ed25519 key
	}
	comment := fmt.Sprintf("seedtest-%d", n)
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		panic(err) // cannot happen for an Ed25519 key
	}
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n")
	return line + " " + comment + "\n", string(pem.EncodeToMemory(block))
}
