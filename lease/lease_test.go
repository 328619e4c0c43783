package lease

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := Request{ID: "r1", Group: "physics", Count: 2, Shape: Shape{Cores: 2, MemoryMiB: 4096}, Duration: time.Hour}
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		edit      func(*Request)
		wantField string // "" for valid
	}{
		"valid":                    {func(*Request) {}, ""},
		"no id":                    {func(r *Request) { r.ID = "" }, "id"},
		"no group":                 {func(r *Request) { r.Group = "" }, "group"},
		"zero count":               {func(r *Request) { r.Count = 0 }, "count"},
		"zero cores":               {func(r *Request) { r.Shape.Cores = 0 }, "shape.cores"},
		"negative memory":          {func(r *Request) { r.Shape.MemoryMiB = -1 }, "shape.memory_mib"},
		"zero duration":            {func(r *Request) { r.Duration = 0 }, "duration"},
		"start_by before earliest": {func(r *Request) { r.EarliestStart, r.StartBy = t0, t0.Add(-time.Minute) }, "start_by"},
		"start_by after earliest":  {func(r *Request) { r.EarliestStart, r.StartBy = t0, t0.Add(time.Minute) }, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r := ok
			tt.edit(&r)
			err := r.Validate()
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Validate: got %v, want nil", err)
				}
				return
			}
			var le *Error
			if !errors.As(err, &le) {
				t.Fatalf("Validate: got %v, want *Error", err)
			}
			if le.Code != EINVALID || le.Field != tt.wantField {
				t.Errorf("Validate: got code %q field %q, want %q %q", le.Code, le.Field, EINVALID, tt.wantField)
			}
			if !strings.HasPrefix(le.Error(), tt.wantField+": ") {
				t.Errorf("Error(): got %q, want it to start with the field", le.Error())
			}
		})
	}
}

func TestTotal(t *testing.T) {
	r := Request{Count: 3, Shape: Shape{Cores: 2, MemoryMiB: 1024}}
	if got, want := r.Total(), (Resources{Cores: 6, MemoryMiB: 3072}); got != want {
		t.Errorf("Total: got %+v, want %+v", got, want)
	}
	if !(Resources{Cores: 2, MemoryMiB: 5}).Fits(Resources{Cores: 2, MemoryMiB: 5}) || (Resources{Cores: 3}).Fits(Resources{Cores: 2}) {
		t.Error("Fits: wrong at the boundary")
	}
}

func TestKindText(t *testing.T) {
	for _, k := range []Kind{Granted, Deferred, Overflowed, Rejected} {
		b, err := k.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Kind
		if err := back.UnmarshalText(b); err != nil || back != k {
			t.Errorf("round trip of %v: got %v, %v", k, back, err)
		}
	}
	var k Kind
	if err := k.UnmarshalText([]byte("maybe")); err == nil {
		t.Error("UnmarshalText(maybe): got nil error, want one")
	}
	if got := Kind(9).String(); got != "kind(9)" {
		t.Errorf("String of an unknown kind: got %q", got)
	}
}

func TestErrorCode(t *testing.T) {
	e := Errorf(ENOTFOUND, "id", "no lease %q", "x")
	tests := map[string]struct {
		err  error
		want string
	}{
		"nil":     {nil, ""},
		"coded":   {e, ENOTFOUND},
		"wrapped": {fmt.Errorf("release: %w", e), ENOTFOUND},
		"plain":   {errors.New("disk on fire"), EINTERNAL},
	}
	for name, tt := range tests {
		if got := ErrorCode(tt.err); got != tt.want {
			t.Errorf("%s: ErrorCode got %q, want %q", name, got, tt.want)
		}
	}
}
