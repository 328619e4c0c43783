package policies

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/fairlease/fairlease/lease"
)

// Load reads the policy file at path; see Parse.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &LoadError{File: path, Msg: err.Error(), Err: err}
	}
	defer f.Close()
	return Parse(path, f)
}

// LoadFS reads the policy file name from fsys, such as Examples; see Parse.
func LoadFS(fsys fs.FS, name string) (*Policy, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, &LoadError{File: name, Msg: err.Error(), Err: err}
	}
	defer f.Close()
	return Parse(name, f)
}

// Parse reads a policy from r: it starts from Default, applies what the file
// sets, resolves inheritance and validates. name is used in errors only.
// Every error is a *LoadError with the file, the line and the key; when a
// file has several problems, the first in the file is reported.
func Parse(name string, r io.Reader) (*Policy, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, &LoadError{File: name, Msg: "read: " + err.Error(), Err: err}
	}
	p := Default()
	d, top, err := newDecoder(data)
	if err != nil {
		return nil, withFile(err, name)
	}
	d.fields(nil, top, policySchema, reflect.ValueOf(p).Elem())
	if err := d.first(); err != nil {
		return nil, withFile(err, name)
	}
	// Every key of a table the schema knows is decoded or reported above;
	// this catches a key that slipped past both.
	if u := d.md.Undecoded(); len(u) > 0 {
		return nil, withFile(d.errorAt(u[0], "unknown key"), name)
	}
	p.inherit(d.set)
	for _, e := range p.problems() {
		d.errs = append(d.errs, located{e, d.locate(p, e.Key)})
	}
	if err := d.first(); err != nil {
		return nil, withFile(err, name)
	}
	p.buildTree()
	return p, nil
}

// Knobs lists the keys Set accepts: the top-level values of a policy file.
func Knobs() []string {
	var knobs []string
	for _, f := range policySchema.fields {
		if f.kind == leafField {
			knobs = append(knobs, f.key)
		}
	}
	return knobs
}

// Set overrides the top-level knob key (reserve, loan_limit, half_life, …;
// see Knobs) with value, read exactly as the TOML value of a file would be,
// so that "0.2", "2h", "7d" and "allow" all work unquoted. It is how
// `fairlease sim --sweep reserve=0,0.1,0.2` varies one knob. On error p is
// unchanged.
func Set(p *Policy, key, value string) error {
	f := policySchema.byKey[key]
	if f == nil || f.kind != leafField {
		return &LoadError{Key: key, Msg: fmt.Sprintf("unknown knob (known knobs: %s)", strings.Join(Knobs(), ", "))}
	}
	q := p.Clone()
	dst := reflect.ValueOf(q).Elem()
	if err := decodeKnob(dst, key, value); err != nil {
		return err
	}
	for _, e := range q.problems() {
		if e.Key == key {
			return e
		}
	}
	v := dst.FieldByIndex(f.index)
	reflect.ValueOf(p).Elem().FieldByIndex(f.index).Set(v)
	return nil
}

// decodeKnob decodes value into the knob key of dst: first as written, so
// that numbers stay numbers, then as a string, so that 2h and allow need no
// quotes.
func decodeKnob(dst reflect.Value, key, value string) error {
	parsed, err := setSnippet(dst, key, key+" = "+value)
	if parsed && err == nil {
		return nil
	}
	var quoted bytes.Buffer
	if qerr := toml.NewEncoder(&quoted).Encode(map[string]string{key: value}); qerr != nil {
		return &LoadError{Key: key, Msg: qerr.Error(), Err: qerr}
	}
	qparsed, qerr := setSnippet(dst, key, quoted.String())
	switch {
	case qparsed && qerr == nil:
		return nil
	case parsed:
		return err // the value read as written says more than its quoted form
	case qparsed:
		return qerr
	}
	return &LoadError{Key: key, Msg: fmt.Sprintf("cannot read %q as a value", value)}
}

// setSnippet decodes the one-line document snippet into dst, reporting
// whether it parsed as exactly the one key.
func setSnippet(dst reflect.Value, key, snippet string) (bool, *LoadError) {
	d, top, err := newDecoder([]byte(snippet))
	if err != nil || len(top) != 1 {
		return false, nil
	}
	if _, ok := top[key]; !ok {
		return false, nil
	}
	d.fields(nil, top, policySchema, dst)
	if err := d.first(); err != nil {
		err.Line = 0 // the line of a snippet means nothing to the caller
		return true, err
	}
	return true, nil
}

// decoder walks a TOML document through Primitives, so that it holds every
// key with the context the toml library needs to locate it: BurntSushi keeps
// key positions private, but an error returned by an Unmarshaler comes back
// as a toml.ParseError with the position of the key being decoded.
type decoder struct {
	md    toml.MetaData
	nodes map[string]toml.Primitive // every key met, by toml.Key.String()
	set   map[string]bool           // keys the document gives a value
	errs  []located
}

type located struct {
	err *LoadError
	pos toml.Position
}

func newDecoder(data []byte) (*decoder, map[string]toml.Primitive, error) {
	var top map[string]toml.Primitive
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&top)
	if err != nil {
		le := &LoadError{Msg: err.Error(), Err: err}
		var pe toml.ParseError
		if errors.As(err, &pe) {
			le.Line, le.Key, le.Msg = pe.Position.Line, pe.LastKey, pe.Message
		}
		return nil, nil, le
	}
	return &decoder{md: md, nodes: map[string]toml.Primitive{}, set: map[string]bool{}}, top, nil
}

// fields decodes the keys of one table (kids, at key) into dst per s.
func (d *decoder) fields(key toml.Key, kids map[string]toml.Primitive, s *schema, dst reflect.Value) {
	for _, k := range slices.Sorted(maps.Keys(kids)) {
		sub, prim := append(key[:len(key):len(key)], k), kids[k]
		d.nodes[sub.String()] = prim
		f := s.byKey[k]
		if f == nil {
			d.fail(sub, "unknown key (%sknown keys: %s)", Suggest(k, s.keys()), strings.Join(s.keys(), ", "))
			continue
		}
		v := dst.FieldByIndex(f.index)
		switch f.kind {
		case leafField:
			d.leaf(sub, prim, f, v)
		case tableField:
			if kids, ok := d.table(sub, prim); ok {
				d.fields(sub, kids, f.sub, v)
			}
		case mapField:
			entries, ok := d.table(sub, prim)
			if !ok {
				continue
			}
			// A named table replaces the default's entries as a whole:
			// a site that lists its flavors offers only those.
			v.Set(reflect.MakeMap(f.typ))
			for _, name := range slices.Sorted(maps.Keys(entries)) {
				esub := append(sub[:len(sub):len(sub)], name)
				d.nodes[esub.String()] = entries[name]
				kids, ok := d.table(esub, entries[name])
				if !ok {
					continue
				}
				e := reflect.New(f.typ.Elem().Elem())
				d.fields(esub, kids, f.sub, e.Elem())
				v.SetMapIndex(reflect.ValueOf(name).Convert(f.typ.Key()), e)
			}
		}
	}
}

// table returns the keys of the table at key, or reports that it is not one.
func (d *decoder) table(key toml.Key, prim toml.Primitive) (map[string]toml.Primitive, bool) {
	if kids, ok := d.children(prim); ok {
		return kids, true
	}
	var c capture
	_ = d.md.PrimitiveDecode(prim, &c)
	d.fail(key, "must be a table, got %s", Describe(c.data))
	return nil, false
}

func (d *decoder) children(prim toml.Primitive) (map[string]toml.Primitive, bool) {
	var kids map[string]toml.Primitive
	// toml leaves the map nil, without an error, when the value is not a
	// table; an empty table gives an empty map.
	if err := d.md.PrimitiveDecode(prim, &kids); err != nil || kids == nil {
		return nil, false
	}
	return kids, true
}

// leafValue hands a raw TOML value to setLeaf. Being an Unmarshaler is
// what makes toml report its errors at the key's position.
type leafValue struct {
	f   *field
	v   reflect.Value
	err error
}

func (l *leafValue) UnmarshalTOML(data any) error {
	l.err = setLeaf(l.f, l.v, data)
	return l.err
}

func (d *decoder) leaf(key toml.Key, prim toml.Primitive, f *field, v reflect.Value) {
	d.set[key.String()] = true
	lv := &leafValue{f: f, v: v}
	err := d.md.PrimitiveDecode(prim, lv)
	if err == nil {
		return
	}
	le := &LoadError{Key: key.String(), Msg: err.Error(), Err: err}
	if lv.err != nil {
		le.Msg, le.Err = lv.err.Error(), lv.err
	}
	var pe toml.ParseError
	if !errors.As(err, &pe) || pe.Position.Line == 0 {
		pe.Position = d.pos(prim)
	}
	d.errs = append(d.errs, located{le, pe.Position})
}

// capture keeps a raw TOML value, for messages.
type capture struct{ data any }

func (c *capture) UnmarshalTOML(data any) error { c.data = data; return nil }

// probe fails on purpose: the error toml returns carries the key's position.
type probe struct{}

var errProbe = errors.New("policies: probe")

func (probe) UnmarshalTOML(any) error { return errProbe }

// pos returns where the key of prim is written. A table made implicitly by
// a dotted key or a [a.b] header has no position of its own; it is where
// its first key is.
func (d *decoder) pos(prim toml.Primitive) toml.Position {
	var pe toml.ParseError
	if err := d.md.PrimitiveDecode(prim, probe{}); errors.As(err, &pe) && pe.Position.Line > 0 {
		return pe.Position
	}
	var first toml.Position
	if kids, ok := d.children(prim); ok {
		for _, kid := range kids {
			if p := d.pos(kid); p.Line > 0 && (first.Line == 0 || p.Start < first.Start) {
				first = p
			}
		}
	}
	return first
}

// position returns where key (a toml.Key.String()) is written, or the zero
// Position for a key the document does not hold (an inherited value).
func (d *decoder) position(key string) toml.Position {
	if prim, ok := d.nodes[key]; ok {
		return d.pos(prim)
	}
	return toml.Position{}
}

// locate returns where the problem at key is written. A key a flavor
// leaves out (cores, memory) has no position: it is where the flavor is.
// Groups' missing keys are inherited values, located where they are
// written or nowhere.
func (d *decoder) locate(p *Policy, key string) toml.Position {
	if pos := d.position(key); pos.Line > 0 {
		return pos
	}
	for name := range p.Flavors {
		if fk := (toml.Key{"flavors", name}).String(); strings.HasPrefix(key, fk+".") {
			return d.position(fk)
		}
	}
	return toml.Position{}
}

func (d *decoder) fail(key toml.Key, format string, args ...any) {
	d.errs = append(d.errs, located{
		&LoadError{Key: key.String(), Msg: fmt.Sprintf(format, args...)},
		d.position(key.String()),
	})
}

// errorAt reports a problem at key, located at its longest prefix that the
// decoder met.
func (d *decoder) errorAt(key toml.Key, msg string) *LoadError {
	le := &LoadError{Key: key.String(), Msg: msg}
	for i := len(key); i > 0; i-- {
		if p := d.position(key[:i].String()); p.Line > 0 {
			le.Line = p.Line
			break
		}
	}
	return le
}

// first returns the problem that comes first in the document; problems
// without a position (inherited values) only when there is nothing else.
func (d *decoder) first() *LoadError {
	if len(d.errs) == 0 {
		return nil
	}
	best := slices.MinFunc(d.errs, func(a, b located) int {
		if (a.pos.Line > 0) != (b.pos.Line > 0) {
			if a.pos.Line > 0 {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.pos.Start, b.pos.Start)
	})
	best.err.Line = best.pos.Line
	return best.err
}

func withFile(err error, file string) error {
	var le *LoadError
	if errors.As(err, &le) {
		le.File = file
	}
	return err
}

// Suggest proposes a known key close to a misspelt one ("did you mean
// weight? "), or "" when none is close.
func Suggest(key string, known []string) string {
	best, bestDist := "", 3 // more than two edits away is a different word
	for _, k := range known {
		if dist := editDistance(key, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return "did you mean " + best + "? "
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// inherit fills in the keys groups do not set: quota and overflow from the
// parent (resolved first) or, for roots, from the defaults; weight from the
// defaults. set holds the keys the file gave a value. A missing parent or a
// cycle falls back to the defaults and is left for problems to report.
func (p *Policy) inherit(set map[string]bool) {
	leaves := groupSchema.leaves()
	const (
		unseen = iota
		resolving
		resolved
	)
	state := map[lease.GroupID]int{}
	var resolve func(id lease.GroupID)
	resolve = func(id lease.GroupID) {
		state[id] = resolving
		g := p.Groups[id]
		from := &p.Defaults
		if parent := p.Groups[g.Parent]; g.Parent != "" && parent != nil && state[g.Parent] != resolving {
			if state[g.Parent] == unseen {
				resolve(g.Parent)
			}
			from = parent
		}
		dst, src, defaults := reflect.ValueOf(g).Elem(), reflect.ValueOf(from).Elem(), reflect.ValueOf(&p.Defaults).Elem()
		for _, l := range leaves {
			if set[append(toml.Key{"groups", string(id)}, l.key...).String()] {
				continue
			}
			switch l.key.String() {
			case "parent":
			case "weight":
				dst.FieldByIndex(l.index).Set(defaults.FieldByIndex(l.index))
			default:
				dst.FieldByIndex(l.index).Set(cloneValue(src.FieldByIndex(l.index)))
			}
		}
		state[id] = resolved
	}
	for _, id := range slices.Sorted(maps.Keys(p.Groups)) {
		if state[id] == unseen {
			resolve(id)
		}
	}
}

// cloneValue copies slices so that groups never share a backing array.
func cloneValue(v reflect.Value) reflect.Value {
	if v.Kind() != reflect.Slice || v.IsNil() {
		return v
	}
	return reflect.AppendSlice(reflect.MakeSlice(v.Type(), 0, v.Len()), v)
}
