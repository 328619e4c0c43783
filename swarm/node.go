package swarm

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/RoaringBitmap/roaring"
	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/metainfo"
	pp "github.com/anacrolix/torrent/peer_protocol"
	"github.com/anacrolix/torrent/storage"
	"golang.org/x/time/rate"
)

// ChunkSize is the block a node requests from its peers: 64 KiB, not the
// customary 16 KiB. anacrolix's cost per byte is mostly per block (a
// request, its bookkeeping, a write, and a request-queue rebuild that
// grows with the blocks of every wanted piece), and a fetching node spent
// a fifth of its CPU time recomputing which blocks to ask for. Peers that
// are fairlease nodes (anacrolix) serve requests of any size up to 1 MiB;
// aria2c serves up to 128 KiB; a peer that serves only 16 KiB (Transmission)
// can fetch from fairlease nodes but not serve them. Third-party clients
// request their own block size, which nodes serve.
const ChunkSize = 64 << 10

// Peer ID prefixes (BEP 20): fetchers tell the origin seed from peers by it.
const (
	hostPeerIDPrefix   = "-FL0001-"
	originPeerIDPrefix = "-FS0001-"
)

// NodeConfig configures a Node.
type NodeConfig struct {
	// DataDir holds the node's piece-completion database. Image files live
	// where Fetch and Seed are told.
	DataDir string
	// ListenAddr is the TCP address for peer connections, e.g.
	// "0.0.0.0:6881", or "127.0.0.1:0" in tests. If its host is a specific
	// IP, outgoing peer, tracker and web seed connections are made from it
	// too, so the tracker and peers see the address the node listens on.
	ListenAddr string
	// UploadRate and DownloadRate cap piece data in bytes/s; 0 = unlimited.
	UploadRate, DownloadRate int64
	Logger                   *slog.Logger
	// ID names the node in logs and, when Count is 0, picks its stagger slot.
	ID string
	// Index of Count: this node is one of Count nodes that start fetching
	// the same image at once (the broker knows which). It fetches its own
	// slot of the n pieces, [Index·n/Count, (Index+1)·n/Count), first, so a
	// cold burst spreads over the image (see piecePlan). Count 0 means a
	// slot of 16 chosen by hashing ID.
	Index, Count int
	// NoStagger keeps anacrolix's stock order (rarest first, then by index).
	// For comparison only.
	NoStagger bool
	// SeedDelay is how long the origin seed holds a repeat request for a
	// chunk peers can serve (see seedGate); 0 = DefaultSeedDelay.
	SeedDelay time.Duration
	// NoSeedDedup turns the seed gate off for Seed: every request is served.
	NoSeedDedup bool
	// Origin marks the image store's node (the broker's). Its peer ID says
	// so, and fetching nodes ask it only for their own slot's pieces (see
	// piecePlan), everything else from other peers.
	Origin bool

	// corrupt, set by tests only, makes this node upload flipped bytes for
	// the pieces it selects.
	corrupt func(piece int) bool
}

// DefaultNodeConfig returns the defaults; callers set DataDir.
func DefaultNodeConfig() NodeConfig {
	return NodeConfig{ListenAddr: "0.0.0.0:6881", SeedDelay: DefaultSeedDelay}
}

// Node is one BitTorrent client holding images: a host agent's cache or the
// image store's seed. It wraps one anacrolix torrent.Client set up for
// private swarms: no DHT, no PEX, no UPnP, no WebTorrent, IPv4 only, TCP
// only, and it uploads to anyone connected (Seed) even while downloading.
type Node struct {
	cfg   NodeConfig
	cl    *torrent.Client
	ln    net.Listener
	store *nodeStorage
	log   *slog.Logger

	mu       sync.Mutex
	torrents map[metainfo.Hash]*nodeTorrent
	closed   bool

	// originSlots are the fetches' own slots (see originView). Its lock is
	// taken under anacrolix's client lock, so never hold it while calling
	// into anacrolix.
	originMu    sync.Mutex
	originSlots map[metainfo.Hash]*originView
}

// originView is what a fetching node lets itself believe the origin seed
// holds: its own slot of the pieces (see piecePlan) until the fetch stalls,
// then everything. anacrolix asks every peer that has a wanted piece for
// it, so a node that saw the origin hold every piece asked it for pieces
// other nodes already had; the origin then held those requests back (see
// seedGate), which stalled its upload to that node, own slot included.
// The origin's bitfield (or have-all) is rewritten as it arrives, before
// anacrolix reads it.
type originView struct {
	pieces     int
	begin, end int  // own slot
	full       bool // stalled: the origin may serve anything
}

// bitfield is the origin's pieces as the fetching node should see them.
func (v *originView) bitfield() []bool {
	bf := make([]bool, (v.pieces+7)/8*8)
	for i := v.begin; i < v.end; i++ {
		bf[i] = true
	}
	return bf
}

type nodeTorrent struct {
	t    *torrent.Torrent
	slot *slot
	seed bool
}

// NewNode starts a node listening on cfg.ListenAddr.
func NewNode(cfg NodeConfig) (*Node, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("swarm: node: empty DataDir; give the node a directory of its own")
	}
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = DefaultNodeConfig().ListenAddr
	}
	if cfg.SeedDelay <= 0 {
		cfg.SeedDelay = DefaultSeedDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.UploadRate < 0 || cfg.DownloadRate < 0 {
		return nil, fmt.Errorf("swarm: node: negative rate (%d up, %d down); use 0 for unlimited", cfg.UploadRate, cfg.DownloadRate)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("swarm: node: %w", err)
	}
	completion, err := storage.NewBoltPieceCompletion(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("swarm: node: open piece-completion database in %s (is another node using it?): %w", cfg.DataDir, err)
	}
	log := cfg.Logger.With("node", cfg.ID)
	n := &Node{
		cfg:      cfg,
		log:      log,
		store:    &nodeStorage{completion: completion, logger: log, slots: map[metainfo.Hash]*slot{}},
		torrents: map[metainfo.Hash]*nodeTorrent{},

		originSlots: map[metainfo.Hash]*originView{},
	}
	n.ln, err = net.Listen("tcp4", cfg.ListenAddr)
	if err != nil {
		completion.Close()
		return nil, fmt.Errorf("swarm: node: listen on %s: %w", cfg.ListenAddr, err)
	}
	// Dial from the listening IP: anacrolix bans misbehaving peers by IP, and
	// the tracker lists the IP it sees, so both must see the node's own IP.
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if ip := n.ln.Addr().(*net.TCPAddr).IP; !ip.IsUnspecified() {
		dialer.LocalAddr = &net.TCPAddr{IP: ip}
	}

	tc := torrent.NewDefaultClientConfig()
	tc.DefaultStorage = n.store
	tc.NoDHT = true
	tc.DisablePEX = true // private torrents: peers come from the tracker only
	tc.NoDefaultPortForwarding = true
	tc.DisableIPv6 = true
	tc.DisableWebtorrent = true
	tc.DisableTCP = true // our own listener and dialer below
	tc.DisableUTP = true
	tc.Seed = true
	// One connection per pair of nodes: when two nodes dial each other at
	// once anacrolix otherwise keeps both, and every connection costs a
	// request-queue rebuild per piece the peer announces.
	tc.DropDuplicatePeerIds = true
	// Plain BitTorrent: header obfuscation (RC4) hides nothing on a private
	// network and costs CPU on every byte.
	tc.HeaderObfuscationPolicy = torrent.HeaderObfuscationPolicy{}
	tc.TrackerDialContext = dialer.DialContext
	tc.HTTPDialContext = dialer.DialContext
	tc.HTTPUserAgent = "fairlease-swarm"
	tc.Bep20 = hostPeerIDPrefix
	if cfg.Origin {
		tc.Bep20 = originPeerIDPrefix
	}
	tc.Slogger = log
	tc.Callbacks.ReadMessage = n.restrictOrigin
	if cfg.UploadRate > 0 {
		tc.UploadRateLimiter = rate.NewLimiter(rate.Limit(cfg.UploadRate), max(int(cfg.UploadRate/4), 64<<10))
	}
	if cfg.DownloadRate > 0 {
		tc.DownloadRateLimiter = rate.NewLimiter(rate.Limit(cfg.DownloadRate), max(int(cfg.DownloadRate/4), 64<<10))
	}
	n.cl, err = torrent.NewClient(tc)
	if err != nil {
		n.ln.Close()
		completion.Close()
		return nil, fmt.Errorf("swarm: node: start torrent client: %w", err)
	}
	n.cl.AddListener(n.ln)
	n.cl.AddDialer(torrent.NetworkDialer{Network: "tcp4", Dialer: dialer})
	return n, nil
}

// restrictOrigin rewrites the origin seed's announcement of its pieces as
// a fetching node receives it (see originView). anacrolix calls it with its
// client lock held, before it handles the message.
func (n *Node) restrictOrigin(pc *torrent.PeerConn, msg *pp.Message) {
	if msg.Type != pp.HaveAll && msg.Type != pp.Bitfield {
		return
	}
	if !strings.HasPrefix(string(pc.PeerID[:]), originPeerIDPrefix) {
		return
	}
	t := pc.Torrent()
	if t == nil {
		return
	}
	n.originMu.Lock()
	v := n.originSlots[t.InfoHash()]
	var bf []bool
	if v != nil && !v.full {
		bf = v.bitfield()
	}
	n.originMu.Unlock()
	if bf != nil {
		msg.Type, msg.Bitfield = pp.Bitfield, bf
	}
}

// Addr is the address peers connect to.
func (n *Node) Addr() net.Addr { return n.ln.Addr() }

// Seed serves the image at path, which must match torrentBytes. It hashes
// the whole file first (anacrolix VerifyData) and fails if any piece is
// wrong; it never writes to path. Unless NoSeedDedup, uploads pass the seed
// gate. It returns once the node is seeding; seeding goes on until Drop or
// Close.
func (n *Node) Seed(ctx context.Context, torrentBytes []byte, path string) error {
	mi, info, err := parseTorrent(torrentBytes)
	if err != nil {
		return err
	}
	ih := mi.HashInfoBytes()
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("swarm: seed %s: %w", info.Name, err)
	}
	if fi.Size() != info.Length {
		return fmt.Errorf("swarm: seed %s: %s has %d bytes, the torrent %d; seed the file the manifest was built from", info.Name, path, fi.Size(), info.Length)
	}
	sl := &slot{path: path, corrupt: n.cfg.corrupt}
	if !n.cfg.NoSeedDedup {
		sl.gate = newSeedGate(info.Length, 16<<10, n.cfg.SeedDelay)
	}
	// The initial check is skipped because VerifyData below hashes it all.
	t, err := n.add(ctx, mi, sl, true, torrent.AddTorrentOpts{DisallowDataDownload: true, DisableInitialPieceCheck: true})
	if err != nil {
		return err
	}
	if sl.gate != nil {
		sl.gate.t.Store(t)
	}
	start := time.Now()
	if err := verifyAll(ctx, t); err != nil {
		n.Drop(ih.HexString())
		return fmt.Errorf("swarm: seed %s: verify %s: %w", info.Name, path, err)
	}
	if err := settle(ctx, t); err != nil {
		n.Drop(ih.HexString())
		return fmt.Errorf("swarm: seed %s: verify %s: %w", info.Name, path, err)
	}
	if missing := t.BytesMissing(); missing != 0 {
		n.Drop(ih.HexString())
		return fmt.Errorf("swarm: seed %s: %d bytes of %s fail their piece hash; rebuild the manifest from this file or restore the image", info.Name, missing, path)
	}
	n.log.Info("swarm: seeding", "name", info.Name, "infohash", ih.HexString(), "path", path, "verify", time.Since(start).Round(time.Millisecond))
	return nil
}

// verifyAll hashes every piece, two at a time (anacrolix's
// Torrent.VerifyData waits for each piece before queueing the next).
func verifyAll(ctx context.Context, t *torrent.Torrent) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			for i := range next {
				// anacrolix leaks its client lock if a dropped torrent's
				// piece is verified: do not ask once it is closed.
				select {
				case <-t.Closed():
					errs <- errors.New("torrent dropped while verifying")
					return
				default:
				}
				if err := t.Piece(i).VerifyDataContext(ctx); err != nil {
					errs <- fmt.Errorf("piece %d: %w", i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	var err error
feed:
	for i := range t.NumPieces() {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		}
	}
	close(next)
	if err != nil {
		cancel()
		<-errs
		return err
	}
	for range 2 {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	return err
}

// settle waits until no piece is being hashed or marked: a verified piece
// is marked complete just after its verify returns.
func settle(ctx context.Context, t *torrent.Torrent) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		busy := false
		for _, run := range t.PieceStateRuns() {
			busy = busy || run.Hashing || run.QueuedForHash || run.Marking || run.Checking
		}
		if !busy || t.Complete().Bool() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Fetch downloads the image of torrentBytes to destPath, from peers the
// tracker names and the torrent's web seeds, and returns once every piece
// is verified. It resumes from pieces verified before (also across
// restarts). The file at destPath is complete only when Fetch returns nil;
// the node then keeps seeding it until Drop or Close. progress, if not nil,
// is called about 4 times a second and at the end with the bytes received
// so far (including those of pieces not verified yet). If ctx ends first the
// torrent is dropped (its verified pieces stay on disk for a later Fetch).
func (n *Node) Fetch(ctx context.Context, torrentBytes []byte, destPath string, progress func(done, total int64)) error {
	mi, info, err := parseTorrent(torrentBytes)
	if err != nil {
		return err
	}
	ih := mi.HashInfoBytes()
	dest, err := filepath.Abs(destPath)
	if err != nil {
		return fmt.Errorf("swarm: fetch %s: %w", info.Name, err)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o750); err != nil {
		return fmt.Errorf("swarm: fetch %s: %w", info.Name, err)
	}
	plan := n.plan(info.NumPieces())
	if !n.cfg.NoStagger {
		// Before the torrent is added: the origin may send its pieces
		// as soon as it is connected.
		n.originMu.Lock()
		n.originSlots[ih] = &originView{pieces: plan.pieces, begin: plan.slotBegin(plan.index), end: plan.slotBegin(plan.index + 1)}
		n.originMu.Unlock()
		defer func() {
			n.originMu.Lock()
			delete(n.originSlots, ih)
			n.originMu.Unlock()
		}()
	}
	t, err := n.add(ctx, mi, &slot{path: dest, corrupt: n.cfg.corrupt}, false, torrent.AddTorrentOpts{})
	if err != nil {
		return err
	}
	staggerDone := make(chan struct{})
	defer close(staggerDone)
	go n.stagger(t, plan, mi.UrlList, staggerDone)
	total := info.Length
	start := time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-t.Complete().On():
			// Pieces were only handed to the kernel for writing (see
			// piece.MarkComplete): the image is on disk once this returns.
			if err := syncFile(dest); err != nil {
				return fmt.Errorf("swarm: fetch %s: %w", info.Name, err)
			}
			if progress != nil {
				progress(total, total)
			}
			st, _ := n.Stats(ih.HexString())
			n.log.Info("swarm: fetched", "name", info.Name, "infohash", ih.HexString(), "took", time.Since(start).Round(time.Millisecond),
				"from_peers", st.FromPeers, "from_web_seeds", st.FromWebSeeds)
			return nil
		case <-t.Closed():
			return fmt.Errorf("swarm: fetch %s: torrent dropped or node closed before completion; fetch again to resume", info.Name)
		case <-ctx.Done():
			n.Drop(ih.HexString())
			return fmt.Errorf("swarm: fetch %s: %w (verified pieces are kept; fetch again to resume)", info.Name, ctx.Err())
		case <-tick.C:
			if progress != nil {
				progress(t.BytesCompleted(), total)
			}
		}
	}
}

// syncFile waits until the file at path is on disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// stagger sets the piece priorities of a fetch every 50 ms until done is
// closed or the torrent is complete; see piecePlan. Stock anacrolix asks
// for pieces rarest first, then by index: in a cold burst every piece is
// equally rare (only the seed has it), so every node asks the seed for the
// same pieces, and nodes end up with parts of the same pieces, which none
// can pass on (peers only serve whole pieces).
//
// It also adds the torrent's web seeds once the fetch has made no progress
// for webSeedAfter: anacrolix would otherwise fetch from them alongside the
// peers, and they are the image server.
func (n *Node) stagger(t *torrent.Torrent, plan piecePlan, webSeeds []string, done <-chan struct{}) {
	np := plan.pieces
	set := make([]torrent.PiecePriority, np) // as set by us; all None now
	complete := make([]bool, np)
	want := make([]torrent.PiecePriority, np)
	if n.cfg.NoStagger {
		t.DownloadAll()
		t.AddWebSeeds(webSeeds)
		webSeeds = nil
	}
	// Completions arrive as events; the piece states are read in full only
	// once, after subscribing. Reading them all every tick (anacrolix
	// builds each piece's state under the client lock) cost a fetching
	// node a tenth of its CPU time and held up its peer connections.
	sub := t.SubscribePieceStateChanges()
	defer sub.Close()
	i := 0
	for _, run := range t.PieceStateRuns() {
		for range run.Length {
			complete[i] = run.Complete
			i++
		}
	}
	var fromPeers *roaring.Bitmap
	lastUseful, lastProgress := int64(-1), time.Now()
	dirty := true
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for ticks := 0; !t.Complete().Bool(); ticks++ {
		ts := t.Stats()
		if d := ts.BytesReadUsefulData.Int64(); d != lastUseful {
			lastUseful, lastProgress = d, time.Now()
		}
		stalled := time.Since(lastProgress)
		if len(webSeeds) > 0 && stalled > webSeedAfter {
			n.log.Info("swarm: fetch stalled, adding web seeds", "infohash", t.InfoHash().HexString(), "stalled", stalled.Round(time.Millisecond))
			t.AddWebSeeds(webSeeds)
			webSeeds = nil
		}
		if !n.cfg.NoStagger {
			if !plan.stealing && stalled > stealAfter {
				plan.stealing = true
				dirty = true
				n.log.Debug("swarm: fetch stalled, taking other slots too", "infohash", t.InfoHash().HexString())
				n.showWholeOrigin(t)
			}
			// Peers' pieces change as they complete them; 200 ms late
			// is soon enough, and the union costs a copy per peer.
			if fromPeers == nil || ticks%4 == 0 {
				fromPeers = roaring.New()
				for _, pc := range t.PeerConns() {
					if !strings.HasPrefix(string(pc.PeerID[:]), originPeerIDPrefix) {
						fromPeers.Or(pc.PeerPieces())
					}
				}
				dirty = true
			}
			if dirty {
				plan.wants(complete, fromPeers, want)
				for p, w := range want {
					if w != set[p] && !complete[p] {
						t.Piece(p).SetPriority(w)
						set[p] = w
					}
				}
				dirty = false
			}
		}
	wait:
		for {
			select {
			case <-done:
				return
			case ch, ok := <-sub.Values:
				if !ok {
					return
				}
				if ch.Index >= 0 && ch.Index < np && ch.Complete != complete[ch.Index] {
					complete[ch.Index] = ch.Complete
					dirty = true
				}
			case <-tick.C:
				break wait
			}
		}
	}
}

// plan is this node's piecePlan for a torrent of np pieces.
func (n *Node) plan(np int) piecePlan {
	idx, cnt := n.cfg.Index, n.cfg.Count
	if cnt <= 0 {
		h := fnv.New32a()
		h.Write([]byte(n.cfg.ID))
		cnt = 16
		idx = int(h.Sum32() % uint32(cnt))
	}
	return piecePlan{pieces: np, index: idx % cnt, count: cnt}
}

// showWholeOrigin ends a stalled fetch's restricted view of the origin
// (see originView): it reconnects to the origin, whose bitfield then
// arrives unchanged. anacrolix cannot be told a peer has more pieces
// than it announced, except by the peer.
func (n *Node) showWholeOrigin(t *torrent.Torrent) {
	n.originMu.Lock()
	v := n.originSlots[t.InfoHash()]
	if v == nil || v.full {
		n.originMu.Unlock()
		return
	}
	v.full = true
	n.originMu.Unlock()
	for _, pc := range t.PeerConns() {
		if !strings.HasPrefix(string(pc.PeerID[:]), originPeerIDPrefix) {
			continue
		}
		addr, ok := pc.RemoteAddr.(*net.TCPAddr)
		if !ok {
			continue
		}
		redial := *addr
		if pc.PeerListenPort > 0 {
			redial.Port = pc.PeerListenPort
		}
		pc.Close()
		t.AddPeers([]torrent.PeerInfo{{Id: pc.PeerID, Addr: &redial, Source: torrent.PeerSourceTracker, Trusted: true}})
	}
}

// How long a fetch may make no progress before the node takes other
// nodes' slots too, and before it adds the web seeds (anacrolix then takes
// up to 5 s more to use them).
const (
	stealAfter   = time.Second
	webSeedAfter = 2 * time.Second
)

// piecePlan is the piece order of node index of count nodes fetching the
// same torrent at once. The pieces are cut into count slots; a node's own
// slot comes first, forwards, a window of its first missing pieces at a
// time (High). So the nodes of a burst ask the seed for distinct pieces,
// and each piece leaves the seed about once. Pieces that a peer other than
// the origin seed has are wanted too (Normal, after the window): they cost
// the seed nothing. Everything else waits (None) for its slot's owner to
// fetch it. If the node stalls (its slot is done and its peers have nothing
// it lacks: an owner is slow or gone) it also takes the following slots,
// each from its end backwards, while their owners work forwards from the
// start, so the two rarely fetch the same piece.
type piecePlan struct {
	pieces, index, count int
	stealing             bool
}

// window is how many pieces of the node's own slot are wanted at once: one
// arriving and one queued behind it, independent of the torrent's size and
// the swarm's. A peer serves a connection's queued requests in no
// particular order (anacrolix picks them from a map), so the pieces of a
// window all complete near its end, and a node passes on only complete
// pieces: with windows of 16 pieces its peers got its pieces 2–5 s after
// the origin started sending them.
func (p piecePlan) window() int { return 2 }

func (p piecePlan) slotBegin(j int) int { return j * p.pieces / p.count }

// wants fills want with each piece's priority.
func (p piecePlan) wants(complete []bool, fromPeers *roaring.Bitmap, want []torrent.PiecePriority) {
	clear(want)
	w := p.window()
	for i := p.slotBegin(p.index); i < p.slotBegin(p.index+1) && w > 0; i++ {
		if !complete[i] {
			want[i] = torrent.PiecePriorityHigh
			w--
		}
	}
	for s := 1; p.stealing && s < p.count && w > 0; s++ {
		j := (p.index + s) % p.count
		for i := p.slotBegin(j+1) - 1; i >= p.slotBegin(j) && w > 0; i-- {
			if !complete[i] {
				want[i] = torrent.PiecePriorityHigh
				w--
			}
		}
	}
	it := fromPeers.Iterator()
	for it.HasNext() {
		i := int(it.Next())
		if i < p.pieces && !complete[i] && want[i] == torrent.PiecePriorityNone {
			want[i] = torrent.PiecePriorityNormal
		}
	}
}

func (n *Node) add(ctx context.Context, mi *metainfo.MetaInfo, sl *slot, seed bool, opts torrent.AddTorrentOpts) (*torrent.Torrent, error) {
	ih := mi.HashInfoBytes()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("swarm: node closed; start a new node")
	}
	if nt, ok := n.torrents[ih]; ok {
		if nt.slot.path != sl.path || nt.seed != seed {
			return nil, fmt.Errorf("swarm: torrent %s is already added for %s; Drop it first", ih.HexString(), nt.slot.path)
		}
		return nt.t, nil
	}
	sl.ih = ih
	if err := n.store.register(ih, sl); err != nil {
		return nil, err
	}
	spec, err := torrent.TorrentSpecFromMetaInfoErr(mi)
	if err != nil {
		n.store.unregister(ih)
		return nil, fmt.Errorf("swarm: add torrent %s: %w", ih.HexString(), err)
	}
	opts.InfoHash = spec.InfoHash
	opts.InfoBytes = spec.InfoBytes
	opts.ChunkSize = ChunkSize
	spec.AddTorrentOpts = opts
	// Web seeds are the image server too: Fetch adds them only as a
	// fallback (see stagger); a seed has no use for them.
	spec.Webseeds = nil
	t, _, err := n.cl.AddTorrentSpec(spec)
	if err != nil {
		n.store.unregister(ih)
		return nil, fmt.Errorf("swarm: add torrent %s: %w", ih.HexString(), err)
	}
	select {
	case <-t.GotInfo():
	case <-ctx.Done():
		t.Drop()
		n.store.unregister(ih)
		return nil, ctx.Err()
	}
	n.torrents[ih] = &nodeTorrent{t: t, slot: sl, seed: seed}
	return t, nil
}

// Drop stops fetching or seeding a torrent. Its file and piece completion
// stay on disk.
func (n *Node) Drop(infoHash string) error {
	var ih metainfo.Hash
	if err := ih.FromHexString(infoHash); err != nil {
		return fmt.Errorf("swarm: drop %q: %w; pass Manifest.InfoHash", infoHash, err)
	}
	n.mu.Lock()
	nt, ok := n.torrents[ih]
	delete(n.torrents, ih)
	n.mu.Unlock()
	if !ok {
		return nil
	}
	nt.t.Drop()
	n.store.unregister(ih)
	return nil
}

// Close stops the node. Piece completion is kept in DataDir.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	errs := n.cl.Close()
	errs = append(errs, n.ln.Close(), n.store.completion.Close())
	if err := errors.Join(errs...); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("swarm: close node: %w", err)
	}
	return nil
}

// Stats is one torrent's traffic on one node, in bytes of piece data.
type Stats struct {
	InfoHash  string
	Size      int64
	Completed int64 // bytes of verified pieces held
	// Uploaded is piece data sent to peers (a seed's egress).
	Uploaded int64
	// Downloaded is piece data received and used; FromPeers + FromWebSeeds.
	Downloaded, FromPeers, FromWebSeeds int64
	// Wasted is piece data received but not used (duplicates, late chunks).
	Wasted int64
	// HashFailures counts pieces that failed verification after download.
	HashFailures int64
	// Banned lists the IPs this node refuses (anacrolix bans by IP, for
	// every torrent of the node).
	Banned []string
	// SeedFirst and SeedHeld count chunk reads the seed gate passed as a
	// first copy or held as a repeat (origin seeds only).
	SeedFirst, SeedHeld int64
	// Peers are the current connections; closed ones count in the totals.
	Peers []PeerStats
}

// PeerStats is the traffic with one connected peer or web seed.
type PeerStats struct {
	Addr       string
	Client     string
	WebSeed    bool
	Uploaded   int64
	Downloaded int64 // used piece data
	Pieces     int   // pieces the peer has
}

// Stats reports a torrent's traffic.
func (n *Node) Stats(infoHash string) (Stats, error) {
	var ih metainfo.Hash
	if err := ih.FromHexString(infoHash); err != nil {
		return Stats{}, fmt.Errorf("swarm: stats %q: %w; pass Manifest.InfoHash", infoHash, err)
	}
	n.mu.Lock()
	nt, ok := n.torrents[ih]
	n.mu.Unlock()
	if !ok {
		return Stats{}, fmt.Errorf("swarm: stats: torrent %s is not on this node; Fetch or Seed it first", infoHash)
	}
	t := nt.t
	ts := t.Stats()
	st := Stats{
		InfoHash:     infoHash,
		Size:         t.Length(),
		Completed:    verifiedBytes(t),
		Uploaded:     ts.BytesWrittenData.Int64(),
		Downloaded:   ts.BytesReadUsefulData.Int64(),
		FromPeers:    ts.PeerConns.BytesReadUsefulData.Int64(),
		FromWebSeeds: ts.WebSeeds.BytesReadUsefulData.Int64(),
		Wasted:       ts.BytesReadData.Int64() - ts.BytesReadUsefulData.Int64(),
		HashFailures: ts.PiecesDirtiedBad.Int64(),
		Banned:       bannedIPs(n.cl.BadPeerIPs()),
	}
	if g := nt.slot.gate; g != nil {
		st.SeedFirst, st.SeedHeld = g.first.Load(), g.held.Load()
	}
	for _, pc := range t.PeerConns() {
		ps := pc.Stats()
		name, _ := pc.PeerClientName.Load().(string)
		st.Peers = append(st.Peers, PeerStats{
			Addr:       pc.RemoteAddr.String(),
			Client:     name,
			Uploaded:   ps.BytesWrittenData.Int64(),
			Downloaded: ps.BytesReadUsefulData.Int64(),
			Pieces:     ps.RemotePieceCount,
		})
	}
	for _, p := range t.WebseedPeerConns() {
		ps := p.Stats()
		st.Peers = append(st.Peers, PeerStats{
			Addr:       p.RemoteAddr.String(),
			WebSeed:    true,
			Uploaded:   ps.BytesWrittenData.Int64(),
			Downloaded: ps.BytesReadUsefulData.Int64(),
			Pieces:     ps.RemotePieceCount,
		})
	}
	slices.SortFunc(st.Peers, func(a, b PeerStats) int { return strings.Compare(a.Addr, b.Addr) })
	return st, nil
}

// verifiedBytes is the size of the pieces t holds and has verified
// (Torrent.BytesCompleted also counts chunks of unverified pieces).
func verifiedBytes(t *torrent.Torrent) int64 {
	info := t.Info()
	var n int64
	i := 0
	for _, run := range t.PieceStateRuns() {
		if run.Complete {
			for p := i; p < i+run.Length; p++ {
				n += info.Piece(p).Length()
			}
		}
		i += run.Length
	}
	return n
}

// bannedIPs normalizes anacrolix's list, which may hold an IPv4 address
// both plain and IPv4-mapped.
func bannedIPs(ips []string) []string {
	var out []string
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil {
			s = a.Unmap().String()
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}
