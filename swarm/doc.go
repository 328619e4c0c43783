// Package swarm distributes VM images peer-to-peer between host caches.
//
// An image is one file, described by a Manifest: its SHA-256 and a private,
// single-file BitTorrent v1 torrent (Build). The broker runs the Tracker,
// which hands a swarm's peers only to holders of a token entitled to that
// image (the token is the last segment of each host's announce URL, so
// Manifest.TorrentFor makes one .torrent per host without re-hashing). The
// image store seeds with a Node (Seed); host agents fetch with theirs
// (Fetch) and keep seeding; the broker's plain HTTP file server is the BEP
// 19 web seed a fetch falls back to (ServeWebSeed). The peer protocol, piece
// verification, rate limits and banning of peers that send bad data are
// github.com/anacrolix/torrent's.
//
// Two things are ours, for a cold burst (many hosts want one image at once,
// and the image server must not send it many times):
//
//   - Piece order (piecePlan): node i of n starts on its own slot of the
//     pieces, [i·N/n, (i+1)·N/n), takes pieces other nodes already hold as
//     they appear, and leaves the rest to their slots' owners. Stock
//     anacrolix asks rarest first, then by index, so all nodes ask the
//     seed for the same pieces and split pieces between them.
//   - The origin as fetchers see it (originView): a fetching node takes
//     the origin seed's bitfield to hold only its own slot, so it asks the
//     origin for nothing other nodes can give it, and the origin's upload
//     to it is never held up by such requests.
//   - The seed gate (seedGate): the origin seed holds a repeat request for a
//     chunk it has sent before, when a peer could send it instead, so the
//     requester turns to that peer.
//
// Measured over loopback (TestSwarmBurst: 1 seed + 6 nodes, 32 MiB, 16
// MiB/s uplinks, lower bound 2 s) the image server sends 1.04–1.08 copies
// in 2.3–3.3 s, against 1.57–1.85 copies in 3.0–3.7 s with stock anacrolix.
package swarm
