package swarm

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/RoaringBitmap/roaring"
	"github.com/anacrolix/torrent"
)

// DefaultSeedDelay is the default NodeConfig.SeedDelay.
const DefaultSeedDelay = 250 * time.Millisecond

// seedGate keeps an origin seed from uploading a chunk again while peers
// could upload it instead. anacrolix has no hook on the upload path, so the
// gate sits in the seed's storage, which anacrolix reads (unlocked, on the
// connection's own request-serving goroutine) for every chunk it uploads:
//
//   - A chunk never uploaded is served at once: the swarm's first copy.
//   - A repeat is held for delay before it is served if a connected peer
//     has announced its piece. Holding stalls that connection's upload queue
//     (anacrolix serves a peer's requests one at a time), so the seed looks
//     slow to a node asking it for data its peers have, and anacrolix moves
//     those requests to the faster peers (it steals requests from slow
//     peers and cancels them here); a cancelled read is dropped unsent.
//   - Other repeats are served at once: nobody else can serve them, e.g.
//     when two nodes each got part of a piece.
//
// Nothing is refused. A refusal (a BEP 6 reject) is not retried by
// anacrolix until some later event, which stalls a swarm whose pieces are
// split between nodes; holding a repeat also for pieces still in flight
// does the same. Most repeats are avoided upstream by the fetchers' piece
// order (see Node.stagger); the gate catches the rest.
type seedGate struct {
	delay     time.Duration
	chunkSize int64
	t         atomic.Pointer[torrent.Torrent] // set once the torrent is added

	mu     sync.Mutex
	served []bool // per chunk: uploaded before

	availMu sync.Mutex
	availAt time.Time
	avail   *roaring.Bitmap // pieces some connected peer has

	first, held atomic.Int64 // chunk reads
}

func newSeedGate(size, chunkSize int64, delay time.Duration) *seedGate {
	return &seedGate{
		delay:     delay,
		chunkSize: chunkSize,
		served:    make([]bool, (size+chunkSize-1)/chunkSize),
	}
}

// admit lets one upload read of n bytes at torrent offset off of piece p
// proceed, after a wait if it repeats a block that peers can serve. Blocks
// are tracked at the protocol's 16 KiB, whatever size peers request.
func (g *seedGate) admit(p int, off, n int64) {
	repeat := false
	g.mu.Lock()
	for c := off / g.chunkSize; c < min((off+max(n, 1)+g.chunkSize-1)/g.chunkSize, int64(len(g.served))); c++ {
		repeat = repeat || g.served[c]
		g.served[c] = true
	}
	g.mu.Unlock()
	if !repeat {
		g.first.Add(1)
		return
	}
	if g.peersHave(p) {
		g.held.Add(1)
		time.Sleep(g.delay)
	}
}

// peersHave says whether a connected peer has announced piece p. The union
// of the peers' bitfields is cached for 100 ms: it costs a copy per peer.
// It is only called for repeats, with the client lock not held (anacrolix
// reads upload data unlocked), so taking it here is safe.
func (g *seedGate) peersHave(p int) bool {
	t := g.t.Load()
	if t == nil {
		return false
	}
	g.availMu.Lock()
	defer g.availMu.Unlock()
	if g.avail == nil || time.Since(g.availAt) > 100*time.Millisecond {
		avail := roaring.New()
		for _, pc := range t.PeerConns() {
			avail.Or(pc.PeerPieces())
		}
		g.avail, g.availAt = avail, time.Now()
	}
	return g.avail.ContainsInt(p)
}
