package ec2api

import (
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

const (
	// MaxBodyBytes bounds a request body. EC2's largest parameter, UserData,
	// is 16 KiB of base64, so 1 MiB leaves room for any honest request.
	MaxBodyBytes = 1 << 20
	// maxParams bounds the number of parameters of one request.
	maxParams = 10000
	// maxIndex bounds list indexes (InstanceId.N): indexes are sorted, never
	// used to size an allocation, but a bound keeps them meaningful.
	maxIndex = 1_000_000
)

// Params are the parameters of one Query API request: the URL query and a
// form-encoded body together. Getters return EC2 errors naming the parameter.
type Params struct {
	m map[string]string
}

// Filter is one Filter.N: a name and its values (any may match).
type Filter struct {
	Name   string
	Values []string
}

// Tag is a key and a value.
type Tag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

// TagSpecification is one TagSpecification.N.
type TagSpecification struct {
	ResourceType string
	Tags         []Tag
}

// ParseParams reads the parameters of r from its URL query and body (the
// body already read, at most MaxBodyBytes). A parameter given twice is an
// error rather than a guess about which one counts.
func ParseParams(r *http.Request, body []byte) (*Params, *Error) {
	p := &Params{m: make(map[string]string)}
	if e := p.add(r.URL.RawQuery); e != nil {
		return nil, e
	}
	if len(body) == 0 {
		return p, nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, InvalidParameterValue("Content-Type", ct, "The body must be application/x-www-form-urlencoded.")
		}
	}
	if e := p.add(string(body)); e != nil {
		return nil, e
	}
	return p, nil
}

// NewParams builds Params from values, for tests and for callers that parse
// elsewhere.
func NewParams(values url.Values) (*Params, *Error) {
	p := &Params{m: make(map[string]string, len(values))}
	for k, vs := range values {
		if len(vs) > 1 {
			return nil, InvalidParameterValue(k, vs[1], "The parameter is given more than once.")
		}
		if len(vs) == 1 {
			p.m[k] = vs[0]
		}
	}
	return p, nil
}

func (p *Params) add(raw string) *Error {
	for kv := range strings.SplitSeq(raw, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return InvalidParameterValue("(name)", k, "The parameter name is not URL-encoded correctly.")
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return InvalidParameterValue(key, v, "The value is not URL-encoded correctly.")
		}
		if _, dup := p.m[key]; dup {
			return InvalidParameterValue(key, val, "The parameter is given more than once.")
		}
		if len(p.m) >= maxParams {
			return InvalidParameterValue("(count)", strconv.Itoa(len(p.m)+1), "Too many parameters.")
		}
		p.m[key] = val
	}
	return nil
}

// Action is the Action parameter.
func (p *Params) Action() string { return p.m["Action"] }

// Has reports whether name is present, even with an empty value.
func (p *Params) Has(name string) bool {
	_, ok := p.m[name]
	return ok
}

// Names returns every parameter name, sorted.
func (p *Params) Names() []string {
	names := make([]string, 0, len(p.m))
	for k := range p.m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// String returns name's value, "" when absent.
func (p *Params) String(name string) string { return p.m[name] }

// RequiredString returns name's value; absent or empty is MissingParameter.
func (p *Params) RequiredString(name string) (string, *Error) {
	v := p.m[name]
	if v == "" {
		return "", MissingParameter(name)
	}
	return v, nil
}

// Int returns name's value as an integer in [min, max], or def when absent.
func (p *Params) Int(name string, def, min, max int64) (int64, *Error) {
	v, ok := p.m[name]
	if !ok {
		return def, nil
	}
	return parseInt(name, v, min, max)
}

// RequiredInt is Int without a default.
func (p *Params) RequiredInt(name string, min, max int64) (int64, *Error) {
	v, ok := p.m[name]
	if !ok {
		return 0, MissingParameter(name)
	}
	return parseInt(name, v, min, max)
}

func parseInt(name, v string, min, max int64) (int64, *Error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, InvalidParameterValue(name, v, "It must be an integer.")
	}
	if n < min || n > max {
		return 0, InvalidParameterValue(name, v, "It must be between "+strconv.FormatInt(min, 10)+" and "+strconv.FormatInt(max, 10)+".")
	}
	return n, nil
}

// Bool returns name's value ("true" or "false", any case), or def when absent.
func (p *Params) Bool(name string, def bool) (bool, *Error) {
	v, ok := p.m[name]
	if !ok {
		return def, nil
	}
	switch strings.ToLower(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, InvalidParameterValue(name, v, "It must be true or false.")
}

// DryRun is the DryRun parameter every action takes.
func (p *Params) DryRun() (bool, *Error) { return p.Bool("DryRun", false) }

// List returns prefix.1, prefix.2, ... (InstanceId.N, ResourceId.N) in index
// order. Gaps are allowed, as EC2 allows them.
func (p *Params) List(prefix string) ([]string, *Error) {
	ms, e := members(p.m, "", prefix)
	if e != nil {
		return nil, e
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		v, ok := m.fields[""]
		if !ok || len(m.fields) > 1 {
			return nil, UnknownParameter(join(m.key, otherThan(m.fields, "")))
		}
		out = append(out, v)
	}
	return out, nil
}

// Filters returns Filter.N.Name and Filter.N.Value.M.
func (p *Params) Filters() ([]Filter, *Error) {
	ms, e := members(p.m, "", "Filter")
	if e != nil {
		return nil, e
	}
	out := make([]Filter, 0, len(ms))
	for _, m := range ms {
		name, ok := m.fields["Name"]
		if !ok || name == "" {
			return nil, MissingParameter(m.key + ".Name")
		}
		vals, e := members(m.fields, m.key, "Value")
		if e != nil {
			return nil, e
		}
		f := Filter{Name: name, Values: make([]string, 0, len(vals))}
		for _, v := range vals {
			if len(v.fields) != 1 || !hasKey(v.fields, "") {
				return nil, UnknownParameter(join(v.key, otherThan(v.fields, "")))
			}
			f.Values = append(f.Values, v.fields[""])
		}
		if extra := otherThan(m.fields, "Name", "Value."); extra != "" {
			return nil, UnknownParameter(m.key + "." + extra)
		}
		out = append(out, f)
	}
	return out, nil
}

// Tags returns prefix.N.Key and prefix.N.Value (Tag.N for CreateTags and
// DeleteTags). A tag without a Value has the empty value.
func (p *Params) Tags(prefix string) ([]Tag, *Error) {
	return tags(p.m, prefix, "")
}

func tags(m map[string]string, prefix, outer string) ([]Tag, *Error) {
	ms, e := members(m, outer, prefix)
	if e != nil {
		return nil, e
	}
	out := make([]Tag, 0, len(ms))
	for _, t := range ms {
		k, ok := t.fields["Key"]
		if !ok {
			return nil, MissingParameter(t.key + ".Key")
		}
		if extra := otherThan(t.fields, "Key", "Value"); extra != "" {
			return nil, UnknownParameter(t.key + "." + extra)
		}
		out = append(out, Tag{Key: k, Value: t.fields["Value"]})
	}
	return out, nil
}

// TagSpecifications returns TagSpecification.N.ResourceType and
// TagSpecification.N.Tag.M.Key/Value.
func (p *Params) TagSpecifications() ([]TagSpecification, *Error) {
	ms, e := members(p.m, "", "TagSpecification")
	if e != nil {
		return nil, e
	}
	out := make([]TagSpecification, 0, len(ms))
	for _, m := range ms {
		rt, ok := m.fields["ResourceType"]
		if !ok || rt == "" {
			return nil, MissingParameter(m.key + ".ResourceType")
		}
		ts, e := tags(m.fields, "Tag", m.key)
		if e != nil {
			return nil, e
		}
		if extra := otherThan(m.fields, "ResourceType", "Tag."); extra != "" {
			return nil, UnknownParameter(m.key + "." + extra)
		}
		out = append(out, TagSpecification{ResourceType: rt, Tags: ts})
	}
	return out, nil
}

// member is one prefix.N: its full key ("Filter.3", "Filter.3.Value.2") and
// the rest of the names under it ("Name", "Value.1"; "" for prefix.N itself).
type member struct {
	index  int
	key    string
	fields map[string]string
}

// members groups the names under prefix.N by N, in index order. It walks
// the names present, so a huge or sparse index costs nothing. outer is the
// key m itself sits under ("" at the top), for full names in errors.
func members(m map[string]string, outer, prefix string) ([]member, *Error) {
	byIndex := map[int]*member{}
	for name, v := range m {
		rest, ok := strings.CutPrefix(name, prefix+".")
		if !ok {
			continue
		}
		idx, field, _ := strings.Cut(rest, ".")
		n, err := strconv.Atoi(idx)
		if err != nil || n < 1 || n > maxIndex || idx[0] == '0' || idx[0] == '+' {
			return nil, InvalidParameterValue(join(outer, name), v, "The index after "+prefix+" must be a number from 1 to "+strconv.Itoa(maxIndex)+".")
		}
		if strings.Contains(rest, ".") && field == "" {
			return nil, UnknownParameter(join(outer, name))
		}
		mem := byIndex[n]
		if mem == nil {
			mem = &member{index: n, key: join(outer, prefix+"."+idx), fields: map[string]string{}}
			byIndex[n] = mem
		}
		mem.fields[field] = v
	}
	out := make([]member, 0, len(byIndex))
	for _, mem := range byIndex {
		out = append(out, *mem)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].index < out[j].index })
	return out, nil
}

// otherThan returns the first (sorted) field name that is neither one of
// exact nor starts with one of the prefixes ending in '.'.
func otherThan(fields map[string]string, allowed ...string) string {
	var bad []string
	for f := range fields {
		ok := false
		for _, a := range allowed {
			if f == a || (strings.HasSuffix(a, ".") && strings.HasPrefix(f, a)) {
				ok = true
				break
			}
		}
		if !ok {
			bad = append(bad, f)
		}
	}
	if len(bad) == 0 {
		return ""
	}
	sort.Strings(bad)
	return bad[0]
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

func join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "." + b
}
