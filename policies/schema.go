package policies

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// The file format is read off the toml tags of Policy and the types it
// holds, so that a knob is declared once. A tagged field is a key; an untagged
// struct field (Group.Quota) has its keys written in the enclosing table; a
// tagged struct is a sub-table; a tagged map of struct pointers is a table of
// named sub-tables (groups). The tag option "size" marks an int64 of MiB
// written as a size.

type fieldKind uint8

const (
	leafField  fieldKind = iota // one value
	tableField                  // a sub-table decoded into a struct
	mapField                    // named sub-tables decoded into map entries
)

type field struct {
	key   string
	index []int // reflect index from the schema's struct, through untagged structs
	typ   reflect.Type
	kind  fieldKind
	size  bool
	sub   *schema // of the table, or of each map entry
}

type schema struct {
	fields []*field
	byKey  map[string]*field
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	policySchema = newSchema(reflect.TypeFor[Policy]())
	groupSchema  = policySchema.byKey["groups"].sub
)

func newSchema(t reflect.Type) *schema {
	s := &schema{byKey: map[string]*field{}}
	s.add(t, nil)
	return s
}

// add panics on a field it cannot decode: that is a programming error that
// any test of the package catches at init.
func (s *schema) add(t reflect.Type, index []int) {
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		idx := append(index[:len(index):len(index)], i)
		tag, ok := sf.Tag.Lookup("toml")
		if !ok {
			if sf.Type.Kind() != reflect.Struct {
				panic(fmt.Sprintf("policies: field %s.%s needs a toml tag", t.Name(), sf.Name))
			}
			s.add(sf.Type, idx)
			continue
		}
		key, opt, _ := strings.Cut(tag, ",")
		if key == "-" {
			continue
		}
		f := &field{key: key, index: idx, typ: sf.Type, size: opt == "size"}
		switch {
		case sf.Type.Kind() == reflect.Struct:
			f.kind, f.sub = tableField, newSchema(sf.Type)
		case sf.Type.Kind() == reflect.Map && sf.Type.Key().Kind() == reflect.String &&
			sf.Type.Elem().Kind() == reflect.Pointer && sf.Type.Elem().Elem().Kind() == reflect.Struct:
			f.kind, f.sub = mapField, newSchema(sf.Type.Elem().Elem())
		case !leafSupported(f):
			panic(fmt.Sprintf("policies: field %s.%s: cannot decode type %s", t.Name(), sf.Name, sf.Type))
		}
		if s.byKey[key] != nil {
			panic(fmt.Sprintf("policies: key %q declared twice in %s", key, t.Name()))
		}
		s.fields = append(s.fields, f)
		s.byKey[key] = f
	}
}

func leafSupported(f *field) bool {
	if f.size {
		return f.typ.Kind() == reflect.Int64
	}
	switch f.typ.Kind() {
	case reflect.Float64, reflect.Int, reflect.Int64, reflect.String:
		return true
	case reflect.Slice:
		return f.typ.Elem().Kind() == reflect.String
	}
	return false
}

// keys lists the keys of the schema in declaration order, for messages.
func (s *schema) keys() []string {
	keys := make([]string, len(s.fields))
	for i, f := range s.fields {
		keys[i] = f.key
	}
	return keys
}

// leafPath is a leaf reached from a schema's struct through sub-tables.
type leafPath struct {
	key   toml.Key // relative, e.g. overflow.sites
	index []int
}

// leaves lists every leaf under s, through sub-tables but not maps.
func (s *schema) leaves() []leafPath {
	var out []leafPath
	var walk func(s *schema, key toml.Key, index []int)
	walk = func(s *schema, key toml.Key, index []int) {
		for _, f := range s.fields {
			k := append(key[:len(key):len(key)], f.key)
			idx := append(index[:len(index):len(index)], f.index...)
			switch f.kind {
			case leafField:
				out = append(out, leafPath{key: k, index: idx})
			case tableField:
				walk(f.sub, k, idx)
			}
		}
	}
	walk(s, nil, nil)
	return out
}

// setLeaf stores the TOML value data in v, the field f, checking its TOML
// type and, for durations and sizes, its unit. Value rules (weight > 0) are
// Validate's, so that a Policy built in code meets the same ones.
func setLeaf(f *field, v reflect.Value, data any) error {
	switch {
	case f.typ == durationType:
		d, err := durationValue(data)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	case f.size:
		n, err := sizeValue(data)
		if err != nil {
			return err
		}
		v.SetInt(n)
		return nil
	}
	switch f.typ.Kind() {
	case reflect.Float64:
		switch x := data.(type) {
		case float64:
			v.SetFloat(x)
			return nil
		case int64:
			if x > 1<<53 || x < -1<<53 {
				return fmt.Errorf("integer %d is too large to be exact; write it as a float", x)
			}
			v.SetFloat(float64(x))
			return nil
		}
		return fmt.Errorf("must be a number, got %s", Describe(data))
	case reflect.Int, reflect.Int64:
		switch x := data.(type) {
		case int64:
			if v.OverflowInt(x) {
				return fmt.Errorf("integer %d is out of range", x)
			}
			v.SetInt(x)
			return nil
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
				return fmt.Errorf("must be an integer, got float %v (write it without a decimal point)", x)
			}
		}
		return fmt.Errorf("must be an integer, got %s", Describe(data))
	case reflect.String:
		if x, ok := data.(string); ok {
			v.SetString(x)
			return nil
		}
		return fmt.Errorf("must be a string, got %s", Describe(data))
	case reflect.Slice:
		arr, ok := data.([]any)
		if !ok {
			return fmt.Errorf("must be an array of strings, got %s", Describe(data))
		}
		if len(arr) == 0 {
			v.SetZero() // nil, as in a policy that never mentions the key
			return nil
		}
		out := reflect.MakeSlice(f.typ, len(arr), len(arr))
		for i, e := range arr {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("element %d must be a string, got %s", i+1, Describe(e))
			}
			out.Index(i).SetString(s)
		}
		v.Set(out)
		return nil
	}
	panic("policies: unsupported field type " + f.typ.String()) // newSchema refuses these
}
