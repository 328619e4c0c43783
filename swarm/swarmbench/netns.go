package swarmbench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Subnet is the /24 the namespaces' addresses come from. Each run has its
// own bridge and the root namespace holds no address on it, so concurrent
// runs may share the subnet.
const Subnet = "10.213.0"

// MaxNodes is how many nodes fit in Subnet beside the seed (.1).
const MaxNodes = 250

// Host is one network namespace on the bridge: the seed's or a node's.
type Host struct {
	NS       string // namespace name
	HostVeth string // veth end on the bridge, in the root namespace
	NSVeth   string // veth end inside NS
	Addr     string // NSVeth's IPv4 address
}

// Network is a bridge in the root namespace with one namespace per host,
// every link shaped by tbf in both directions.
type Network struct {
	Prefix string
	Bridge string
	Rate   int64  // bits per second, each direction of each link
	Hosts  []Host // [0] is the seed, [i] node i

	// What Setup made, so that Close removes only that.
	madeBridge bool
	madeNS     []string
	madeVeths  []string
}

// NewPrefix returns a name prefix unique to this run: every namespace,
// veth and bridge of the run starts with it, so that runs never collide
// and leftovers of a killed run are easy to find (ip netns list).
func NewPrefix() string {
	var b [3]byte
	rand.Read(b[:])
	return "fsb" + hex.EncodeToString(b[:])
}

// Setup creates the bridge and nodes+1 namespaces named after prefix and
// shapes each link to rate bits per second with tbf: the namespace's veth
// end limits what it sends, the bridge end what it receives. On error it
// removes what it made.
func Setup(ctx context.Context, prefix string, nodes int, rate int64) (n *Network, err error) {
	if nodes < 1 || nodes > MaxNodes {
		return nil, fmt.Errorf("swarmbench: %d nodes do not fit the /24 (1 to %d)", nodes, MaxNodes)
	}
	n = &Network{Prefix: prefix, Bridge: prefix + "-br", Rate: rate}
	for i := 0; i <= nodes; i++ {
		n.Hosts = append(n.Hosts, Host{
			NS:       fmt.Sprintf("%s-%d", prefix, i),
			HostVeth: fmt.Sprintf("%s-%dh", prefix, i),
			NSVeth:   fmt.Sprintf("%s-%dn", prefix, i),
			Addr:     fmt.Sprintf("%s.%d", Subnet, i+1),
		})
	}
	defer func() {
		if err != nil {
			n.Close()
			n = nil
		}
	}()
	if err := ipRun(ctx, "ip", "link", "add", n.Bridge, "type", "bridge"); err != nil {
		return n, err
	}
	n.madeBridge = true
	if err := ipRun(ctx, "ip", "link", "set", n.Bridge, "up"); err != nil {
		return n, err
	}
	tbf := tbfArgs(rate)
	for _, h := range n.Hosts {
		if err := ipRun(ctx, "ip", "netns", "add", h.NS); err != nil {
			return n, err
		}
		n.madeNS = append(n.madeNS, h.NS)
		if err := ipRun(ctx, "ip", "link", "add", h.HostVeth, "type", "veth", "peer", "name", h.NSVeth, "netns", h.NS); err != nil {
			return n, err
		}
		n.madeVeths = append(n.madeVeths, h.HostVeth)
		cmds := [][]string{
			{"ip", "link", "set", h.HostVeth, "master", n.Bridge, "up"},
			{"ip", "-n", h.NS, "addr", "add", h.Addr + "/24", "dev", h.NSVeth},
			{"ip", "-n", h.NS, "link", "set", h.NSVeth, "up"},
			{"ip", "-n", h.NS, "link", "set", "lo", "up"},
			append([]string{"tc", "-n", h.NS, "qdisc", "add", "dev", h.NSVeth, "root"}, tbf...),
			append([]string{"tc", "qdisc", "add", "dev", h.HostVeth, "root"}, tbf...),
		}
		for _, c := range cmds {
			if err := ipRun(ctx, c[0], c[1:]...); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// tbfArgs shapes to rate bits per second. The bucket holds ~4 ms of
// traffic (at least 32 KiB, well above one MTU and the kernel timer's
// granularity) and the queue 50 ms, enough for many TCP flows to share
// a link without drops turning into the bottleneck.
func tbfArgs(rate int64) []string {
	burst := max(rate/8/250, 32<<10)
	return []string{"tbf", "rate", strconv.FormatInt(rate, 10) + "bit",
		"burst", strconv.FormatInt(burst, 10), "latency", "50ms"}
}

// Close removes the namespaces, veths and bridge Setup made. Deleting the bridge-side
// veth first removes both ends at once, so that nothing of the run is left
// when Close returns (a namespace's own devices go away asynchronously).
// It runs without the caller's context, which may be what was cancelled.
func (n *Network) Close() error {
	if n == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var errs []error
	for _, v := range n.madeVeths {
		if err := ipRun(ctx, "ip", "link", "del", v); err != nil && !notFound(err) {
			errs = append(errs, err)
		}
	}
	for _, ns := range n.madeNS {
		if err := ipRun(ctx, "ip", "netns", "del", ns); err != nil && !notFound(err) {
			errs = append(errs, err)
		}
	}
	if n.madeBridge {
		if err := ipRun(ctx, "ip", "link", "del", n.Bridge); err != nil && !notFound(err) {
			errs = append(errs, err)
		}
	}
	n.madeVeths, n.madeNS, n.madeBridge = nil, nil, false
	if len(errs) > 0 {
		return fmt.Errorf("swarmbench: remove the network of run %s (find leftovers with 'ip netns list; ip link' and delete those named %s*): %w", n.Prefix, n.Prefix, errors.Join(errs...))
	}
	return nil
}

// Counters are a link's byte counts seen from the bridge side.
type Counters struct {
	Sent     int64 // bytes the namespace sent (frames, with headers)
	Received int64 // bytes delivered into the namespace
}

// Counters reads host i's link counters. The bridge end's rx is what the
// namespace sent and its tx what it received.
func (n *Network) Counters(i int) (Counters, error) {
	base := "/sys/class/net/" + n.Hosts[i].HostVeth + "/statistics/"
	rx, err := readInt(base + "rx_bytes")
	if err != nil {
		return Counters{}, err
	}
	tx, err := readInt(base + "tx_bytes")
	if err != nil {
		return Counters{}, err
	}
	return Counters{Sent: rx, Received: tx}, nil
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("swarmbench: read link counter: %w", err)
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// cmdError is a failed ip or tc command with what it printed.
type cmdError struct {
	cmd    string
	output string
	err    error
}

func (e *cmdError) Error() string {
	return fmt.Sprintf("%s: %v: %s", e.cmd, e.err, e.output)
}
func (e *cmdError) Unwrap() error { return e.err }

func notFound(err error) bool {
	var ce *cmdError
	if !errors.As(err, &ce) {
		return false
	}
	return strings.Contains(ce.output, "Cannot find device") ||
		strings.Contains(ce.output, "No such file or directory") ||
		strings.Contains(ce.output, "does not exist")
}

func ipRun(ctx context.Context, name string, args ...string) error {
	var out bytes.Buffer
	c := exec.CommandContext(ctx, name, args...)
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		return &cmdError{cmd: name + " " + strings.Join(args, " "), output: strings.TrimSpace(out.String()), err: err}
	}
	return nil
}
