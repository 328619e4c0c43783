package swarmbench

import (
	"math"
	"testing"
)

func TestLowerBound(t *testing.T) {
	tests := []struct {
		name        string
		nodes       int
		size        int64
		links       Links
		pieceLength int64
		want        Bound
	}{
		{
			// S = 2³¹ bits; S/R = 21.47483648 s; N·S/(9R) = 8/9 of that.
			name: "8 nodes 256MiB every link 100mbit", nodes: 8, size: 256 << 20,
			links: EqualLinks(100e6), pieceLength: 256 << 10,
			want: Bound{Seconds: 21.47483648, SeedS: 21.47483648, DownloadS: 21.47483648,
				SwarmS: 19.08874354, PipelineFillS: 3 * 0.02097152},
		},
		{
			// ⌊log₂16⌋ = 4 piece times of 1 MiB at 100 Mbit/s.
			name: "16 nodes 256MiB every link 100mbit", nodes: 16, size: 256 << 20,
			links: EqualLinks(100e6), pieceLength: 1 << 20,
			want: Bound{Seconds: 21.47483648, SeedS: 21.47483648, DownloadS: 21.47483648,
				SwarmS: 20.21161080, PipelineFillS: 4 * 0.08388608},
		},
		{
			// A fast seed and slow downloads: S/d = 8e9/1e8 = 80 s wins
			// over N·S/(U_s+Σu) = 8e10/1.1e9 = 72.73 s.
			name: "download bound", nodes: 10, size: 1e9,
			links: Links{SeedUp: 1e9, NodeUp: 10e6, NodeDown: 100e6},
			want:  Bound{Seconds: 80, SeedS: 8, DownloadS: 80, SwarmS: 72.72727273},
		},
		{
			// Slow uploads: 100·1e9/(1e8+1e9) = 90.909 s beats S/U_s = 10 s.
			name: "swarm bound", nodes: 100, size: 125e6,
			links: Links{SeedUp: 100e6, NodeUp: 10e6, NodeDown: 1e9},
			want:  Bound{Seconds: 90.90909091, SeedS: 10, DownloadS: 1, SwarmS: 90.90909091},
		},
		{
			// One node: the seed's link is the bound and nothing pipelines.
			name: "one node", nodes: 1, size: 1e6, links: EqualLinks(8e6), pieceLength: 1 << 20,
			want: Bound{Seconds: 1, SeedS: 1, DownloadS: 1, SwarmS: 0.5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := LowerBound(tt.nodes, tt.size, tt.links, tt.pieceLength)
			for _, f := range []struct {
				name      string
				got, want float64
			}{
				{"Seconds", got.Seconds, tt.want.Seconds},
				{"SeedS", got.SeedS, tt.want.SeedS},
				{"DownloadS", got.DownloadS, tt.want.DownloadS},
				{"SwarmS", got.SwarmS, tt.want.SwarmS},
				{"PipelineFillS", got.PipelineFillS, tt.want.PipelineFillS},
			} {
				if math.Abs(f.got-f.want) > 1e-6 {
					t.Errorf("%s = %.8f, want %.8f", f.name, f.got, f.want)
				}
			}
		})
	}
}

func TestHTTPBound(t *testing.T) {
	// 8 copies of 2³¹ bits through one 100 Mbit/s link.
	if got, want := HTTPBound(8, 256<<20, EqualLinks(100e6)), 171.79869184; math.Abs(got-want) > 1e-6 {
		t.Errorf("HTTPBound = %.8f, want %.8f", got, want)
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"100mbit", 100e6, false},
		{"100Mbit", 100e6, false},
		{"1gbit", 1e9, false},
		{"2.5gbit", 2.5e9, false},
		{"500kbit", 500e3, false},
		{"64000bit", 64000, false},
		{"100mbps", 0, true}, // tc's bps is bytes: refused rather than misread
		{"100", 0, true},
		{"fast", 0, true},
		{"0mbit", 0, true},
		{"-1mbit", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	for _, bits := range []int64{100e6, 1e9, 2.5e9, 500e3, 64000} {
		if got, err := ParseRate(FormatRate(bits)); err != nil || got != bits {
			t.Errorf("ParseRate(FormatRate(%d)) = %d, %v", bits, got, err)
		}
	}
}
