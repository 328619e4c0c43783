package netmodel

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"10GB", 10 * GB, ""},
		{"10 GB", 10 * GB, ""},
		{"10gb", 10 * GB, ""},
		{"1.5 GiB", 3 << 29, ""},
		{"512MiB", 512 * MiB, ""},
		{"10", 0, "with a unit"},
		{"", 0, "with a unit"},
		{"ten GB", 0, `want a size such as 10GB or 512MiB, got "ten GB"`},
		{"10 parsecs", 0, "want a size"},
		{"-1GB", 0, "want a size"},
		{"0GB", 0, "must be > 0"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseSize(%q): error %v, want one saying %q", tt.in, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr string
	}{
		{"1gbit", 1e9, ""},
		{"1Gbit", 1e9, ""},
		{"1 Gbit/s", 1e9, ""},
		{"2.5gbits", 2.5e9, ""},
		{"10Gbps", 10e9, ""},
		{"100mbit", 1e8, ""},
		{"100 kbit/s", 1e5, ""},
		{"1Gb/s", 1e9, ""},
		{"125MB/s", 1e9, ""},
		{"125MBps", 1e9, ""},
		{"9600bit", 9600, ""},
		{"1e9 bit/s", 1e9, ""},
		{"1g", 0, "want a rate such as 1gbit, 10Gbps or 125MB/s"},
		{"1000", 0, "want a rate"},
		{"fast", 0, `got "fast"`},
		{"gbit", 0, "want a rate"},
		{"-1gbit", 0, "want a rate"},
		{"1xbit", 0, "want a rate"},
		{"0gbit", 0, "must be > 0"},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseRate(%q): error %v, want one saying %q", tt.in, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("ParseRate(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestFormat(t *testing.T) {
	sizes := map[float64]string{
		0: "0 B", 999: "999 B", 1000: "1 kB", 12e9: "12 GB", 10e9: "10 GB", 160e9: "160 GB",
		10.24e12: "10.2 TB", 1.28e12: "1.28 TB", 999.6e9: "1 TB", 4 * MiB: "4.19 MB",
	}
	for in, want := range sizes {
		if got := FormatSize(in); got != want {
			t.Errorf("FormatSize(%v) = %q, want %q", in, got, want)
		}
	}
	rates := map[float64]string{
		1e9: "1 Gbit/s", 8e9: "8 Gbit/s", 2.5e9: "2.5 Gbit/s", 8e8: "800 Mbit/s", 1.25e9: "1.25 Gbit/s", 64e9: "64 Gbit/s",
	}
	for in, want := range rates {
		if got := FormatRate(in); got != want {
			t.Errorf("FormatRate(%v) = %q, want %q", in, got, want)
		}
	}
}
