package swarm

import (
	"strings"
	"testing"

	"github.com/RoaringBitmap/roaring"
	"github.com/anacrolix/torrent"
	"github.com/google/go-cmp/cmp"
)

// render shows priorities as one letter a piece: H(igh), n(ormal), .(none),
// or # for a complete piece.
func render(want []torrent.PiecePriority, complete []bool) string {
	var b strings.Builder
	for i, w := range want {
		switch {
		case complete[i]:
			b.WriteByte('#')
		case w == torrent.PiecePriorityHigh:
			b.WriteByte('H')
		case w == torrent.PiecePriorityNormal:
			b.WriteByte('n')
		default:
			b.WriteByte('.')
		}
	}
	return b.String()
}

func TestPiecePlan(t *testing.T) {
	// 24 pieces, 3 nodes: slots of 8, windows of 2.
	for _, tc := range []struct {
		name      string
		plan      piecePlan
		complete  string // '#' = complete
		fromPeers []uint32
		want      string
	}{
		{"cold start, node 0", piecePlan{pieces: 24, index: 0, count: 3},
			"........................", nil,
			"HH......................"},
		{"cold start, node 2", piecePlan{pieces: 24, index: 2, count: 3},
			"........................", nil,
			"................HH......"},
		{"window slides past complete pieces", piecePlan{pieces: 24, index: 1, count: 3},
			"........##.#............", nil,
			"........##H#H..........."},
		{"pieces peers have come next", piecePlan{pieces: 24, index: 0, count: 3},
			"........................", []uint32{8, 9, 17, 2},
			"HHn.....nn.......n......"},
		{"own slot done: wait, do not steal", piecePlan{pieces: 24, index: 0, count: 3},
			"########................", nil,
			"########................"},
		{"stalled: steal next slots from their ends", piecePlan{pieces: 24, index: 0, count: 3, stealing: true},
			"########.............#..", nil,
			"########......HH.....#.."},
		{"stalled, next slot done: the one after", piecePlan{pieces: 24, index: 0, count: 3, stealing: true},
			"################.....#..", nil,
			"################.....#HH"},
		{"uneven slots", piecePlan{pieces: 10, index: 2, count: 3},
			"..........", nil,
			"......HH.."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			complete := make([]bool, tc.plan.pieces)
			for i, c := range tc.complete {
				complete[i] = c == '#'
			}
			want := make([]torrent.PiecePriority, tc.plan.pieces)
			tc.plan.wants(complete, roaring.BitmapOf(tc.fromPeers...), want)
			if d := cmp.Diff(tc.want, render(want, complete)); d != "" {
				t.Errorf("priorities (-want +got):\n%s", d)
			}
		})
	}
}
