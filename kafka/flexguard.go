package kafka

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Flexible request versions (KIP-482) end every structure with its tagged
// fields: an unsigned varint count, then per field an unsigned varint tag,
// an unsigned varint size and that many bytes. kmsg reads the count
// without bounding it by the bytes left: a count of 2^32-1 in a request of
// a few bytes loops that many times (about ten seconds of CPU) before the
// decode fails. Every other length kmsg reads is bounded by the bytes left.
//
// checkFlexible closes that hole before kmsg sees a flexible body: it walks
// the body along the same layout kmsg reads, and refuses it when a count
// of tagged fields, an array length or a size runs past the bytes left.
// The walk costs O(len(body)): each tagged field, array element or field
// consumes at least one byte or ends the walk. Where the walk accepts, kmsg
// reads every tag count at the position the walk checked it (the walk
// mirrors kmsg's varint and length rules exactly while the input is valid;
// past the first invalid byte kmsg's reads return at once), so kmsg's
// work is bounded too.
//
// The layout is not written by hand: it is learned from kmsg, once per API
// key and version, by encoding probe requests. A field is on the wire at a
// version when setting it changes the encoding; it is a plain field when
// the encoding keeps its length (fixed-size fields) or grows by exactly
// twice as much for two units as for one (strings, bytes, arrays), and a
// tagged field otherwise. Tagged fields need no layout, since the walk
// skips each by its size, except those kmsg decodes as structures, which
// have tagged fields of their own: taggedStructs names them.
// TestFlexibleLayoutMatchesKmsg checks the learned layout of every served
// flexible version against kmsg's encoding of randomly filled requests.

// taggedStructs are the tagged fields of request structures that kmsg
// decodes as structures, by "Type.Field", with their tags.
var taggedStructs = map[string]uint32{
	"FetchRequest.ReplicaState": 1,
}

// wireKind is how a field is laid out in a flexible version.
type wireKind uint8

const (
	wireFixed  wireKind = iota // n bytes: integers, booleans, floats, UUIDs
	wireString                 // compact (nullable) string or bytes: uvarint length+1, then the bytes
	wireArray                  // compact (nullable) array: uvarint length+1, then the elements
	wireStruct                 // fields, then tagged fields
)

// wireType is the layout of a field, or of a whole request, in one
// flexible version.
type wireType struct {
	kind   wireKind
	n      int                  // wireFixed: the size
	elem   *wireType            // wireArray: the elements
	fields []*wireType          // wireStruct: the fields, in wire order
	tags   map[uint32]*wireType // wireStruct: tagged fields decoded as structures
}

var errFlexTruncated = errors.New("runs past the end of the request")

// checkFlexible walks the body of a flexible request (after the header);
// see above.
func checkFlexible(key, version int16, body []byte) error {
	t, err := flexibleLayout(key, version)
	if err != nil {
		return err
	}
	_, err = t.skip(body)
	return err
}

// skip returns b past one value of type t.
func (t *wireType) skip(b []byte) ([]byte, error) {
	switch t.kind {
	case wireFixed:
		if len(b) < t.n {
			return nil, errFlexTruncated
		}
		return b[t.n:], nil
	case wireString:
		u, b, err := flexUvarint(b)
		if err != nil {
			return nil, err
		}
		// As kmsg: int(u)-1, negative for null (kmsg fails a null where
		// none is allowed, and reads nothing more).
		l := int(u) - 1
		if l < 0 {
			return b, nil
		}
		if l > len(b) {
			return nil, fmt.Errorf("string or bytes of %d %w", l, errFlexTruncated)
		}
		return b[l:], nil
	case wireArray:
		u, b, err := flexUvarint(b)
		if err != nil {
			return nil, err
		}
		// As kmsg's CompactArrayLen: int32(u)-1, refused above the bytes
		// left, no elements when not positive.
		n := int32(u) - 1
		if int(n) > len(b) {
			return nil, fmt.Errorf("array of %d %w", n, errFlexTruncated)
		}
		for range max(n, 0) {
			if b, err = t.elem.skip(b); err != nil {
				return nil, err
			}
		}
		return b, nil
	default:
		var err error
		for _, f := range t.fields {
			if b, err = f.skip(b); err != nil {
				return nil, err
			}
		}
		return t.skipTags(b)
	}
}

// skipTags skips a structure's tagged fields. Each consumes at least two
// bytes or ends the walk, so a count above the bytes left fails fast.
func (t *wireType) skipTags(b []byte) ([]byte, error) {
	n, b, err := flexUvarint(b)
	if err != nil {
		return nil, err
	}
	if int(n) > len(b)/2 {
		return nil, fmt.Errorf("%d tagged fields with %d bytes left", n, len(b))
	}
	for range n {
		var key, size uint32
		if key, b, err = flexUvarint(b); err != nil {
			return nil, err
		}
		if size, b, err = flexUvarint(b); err != nil {
			return nil, err
		}
		if int(size) > len(b) {
			return nil, fmt.Errorf("tagged field %d of %d bytes %w", key, size, errFlexTruncated)
		}
		if st := t.tags[key]; st != nil {
			// kmsg decodes this one from its own reader over the field.
			if _, err := st.skip(b[:size]); err != nil {
				return nil, fmt.Errorf("tagged field %d: %w", key, err)
			}
		}
		b = b[size:]
	}
	return b, nil
}

// flexUvarint reads an unsigned varint exactly as kmsg does: at most 32
// bits in at most five bytes.
func flexUvarint(b []byte) (uint32, []byte, error) {
	var x uint32
	for i := range 5 {
		if i == len(b) {
			return 0, nil, fmt.Errorf("varint %w", errFlexTruncated)
		}
		c := b[i]
		if i == 4 {
			if c > 0x0f {
				return 0, nil, errors.New("varint overflows 32 bits")
			}
			return x | uint32(c)<<28, b[5:], nil
		}
		x |= uint32(c&0x7f) << (7 * i)
		if c < 0x80 {
			return x, b[i+1:], nil
		}
	}
	panic("unreachable")
}

// flexibleLayouts caches the layout of each flexible request version:
// key<<16 | version -> layoutResult.
var flexibleLayouts sync.Map

type layoutResult struct {
	t   *wireType
	err error
}

// flexibleLayout returns the layout of a flexible request version, learned
// from kmsg on first use.
func flexibleLayout(key, version int16) (*wireType, error) {
	id := int32(key)<<16 | int32(uint16(version))
	if r, ok := flexibleLayouts.Load(id); ok {
		return r.(layoutResult).t, r.(layoutResult).err
	}
	t, err := learnLayout(key, version)
	if err != nil {
		err = fmt.Errorf("kafka: layout of %s v%d: %w", kmsg.NameForKey(key), version, err)
	}
	flexibleLayouts.Store(id, layoutResult{t, err})
	return t, err
}

// learnLayout probes kmsg's encoding of a request version; see above.
func learnLayout(key, version int16) (*wireType, error) {
	req := kmsg.RequestForKey(key)
	if req == nil {
		return nil, errors.New("unknown key")
	}
	req.SetVersion(version)
	if !req.IsFlexible() {
		return nil, errors.New("not a flexible version")
	}
	p := &prober{key: key, version: version}
	return p.learn(reflect.TypeOf(req).Elem(), nil)
}

// prober learns layouts by encoding requests of one key and version.
type prober struct {
	key, version int16
}

var tagsType = reflect.TypeFor[kmsg.Tags]()

// encode encodes a default request with one element in each array on path
// (field indexes from the request down to a structure) after mutate
// changes that structure.
func (p *prober) encode(path []int, mutate func(reflect.Value)) []byte {
	req := kmsg.RequestForKey(p.key)
	req.SetVersion(p.version)
	v := reflect.ValueOf(req).Elem()
	for _, i := range path {
		f := v.Field(i)
		if f.Kind() == reflect.Slice {
			if f.Len() == 0 {
				f.Set(reflect.Append(f, newDefault(f.Type().Elem())))
			}
			v = f.Index(0)
		} else {
			v = f
		}
	}
	if mutate != nil {
		mutate(v)
	}
	return req.AppendTo(nil)
}

// newDefault returns a new value of t with kmsg's defaults set.
func newDefault(t reflect.Type) reflect.Value {
	e := reflect.New(t)
	if d, ok := e.Interface().(interface{ Default() }); ok {
		d.Default()
	}
	return e.Elem()
}

// learn returns the layout of the structure of type t at path.
func (p *prober) learn(t reflect.Type, path []int) (*wireType, error) {
	st := &wireType{kind: wireStruct}
	base := p.encode(path, nil)
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() || sf.Type == tagsType || len(path) == 0 && sf.Name == "Version" {
			continue
		}
		if sf.Type.Kind() == reflect.Struct {
			tag, ok := taggedStructs[t.Name()+"."+sf.Name]
			if !ok {
				return nil, fmt.Errorf("%s.%s: a structure field that is not a known tagged field", t.Name(), sf.Name)
			}
			ft, err := plainStruct(sf.Type)
			if err != nil {
				return nil, err
			}
			if st.tags == nil {
				st.tags = map[uint32]*wireType{}
			}
			st.tags[tag] = ft
			continue
		}
		grow := func(units int) []byte {
			return p.encode(path, func(v reflect.Value) { growField(v.Field(i), units) })
		}
		e1 := grow(1)
		if bytes.Equal(e1, base) {
			continue // not in this version
		}
		ft, fixed := fixedType(sf.Type)
		if fixed {
			if len(e1) == len(base) {
				st.fields = append(st.fields, ft)
			}
			continue // else tagged
		}
		d1, d2 := len(e1)-len(base), len(grow(2))-len(base)
		if d1 <= 0 || d2 != 2*d1 {
			continue // tagged: its size is on the wire
		}
		ft, err := p.variable(sf, t, append(path[:len(path):len(path)], i))
		if err != nil {
			return nil, err
		}
		st.fields = append(st.fields, ft)
	}
	return st, nil
}

// variable returns the layout of a string, bytes or array field, at path
// when it is an array of structures.
func (p *prober) variable(sf reflect.StructField, parent reflect.Type, path []int) (*wireType, error) {
	switch t := sf.Type; {
	case t.Kind() == reflect.String, t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.String,
		t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		return &wireType{kind: wireString}, nil
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		elem, err := p.learn(t.Elem(), path)
		if err != nil {
			return nil, err
		}
		return &wireType{kind: wireArray, elem: elem}, nil
	case t.Kind() == reflect.Slice:
		if et, ok := fixedType(t.Elem()); ok {
			return &wireType{kind: wireArray, elem: et}, nil
		}
		if t.Elem().Kind() == reflect.String {
			return &wireType{kind: wireArray, elem: &wireType{kind: wireString}}, nil
		}
	}
	return nil, fmt.Errorf("%s.%s: type %s not understood", parent.Name(), sf.Name, sf.Type)
}

// plainStruct is the layout of a structure decoded from a tagged field:
// every field, in order, then its own tagged fields.
func plainStruct(t reflect.Type) (*wireType, error) {
	st := &wireType{kind: wireStruct}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() || sf.Type == tagsType {
			continue
		}
		ft, ok := fixedType(sf.Type)
		if !ok {
			return nil, fmt.Errorf("%s.%s: only fixed-size fields are understood in a tagged structure", t.Name(), sf.Name)
		}
		st.fields = append(st.fields, ft)
	}
	return st, nil
}

// fixedType is the layout of a fixed-size type.
func fixedType(t reflect.Type) (*wireType, bool) {
	switch t.Kind() {
	case reflect.Bool, reflect.Int8, reflect.Uint8:
		return &wireType{kind: wireFixed, n: 1}, true
	case reflect.Int16, reflect.Uint16:
		return &wireType{kind: wireFixed, n: 2}, true
	case reflect.Int32, reflect.Uint32, reflect.Float32:
		return &wireType{kind: wireFixed, n: 4}, true
	case reflect.Int64, reflect.Uint64, reflect.Float64:
		return &wireType{kind: wireFixed, n: 8}, true
	case reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return &wireType{kind: wireFixed, n: t.Len()}, true
		}
	}
	return nil, false
}

// growField changes a field from its default: a fixed-size one to another
// value, a string, bytes or array by units characters, bytes or default
// elements.
func growField(f reflect.Value, units int) {
	switch f.Kind() {
	case reflect.Bool:
		f.SetBool(!f.Bool())
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f.SetInt(f.Int() + 1)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f.SetUint(f.Uint() + 1)
	case reflect.Float32, reflect.Float64:
		f.SetFloat(f.Float() + 1)
	case reflect.Array:
		f.Index(0).SetUint(f.Index(0).Uint() + 1)
	case reflect.String:
		f.SetString(f.String() + strings.Repeat("x", units))
	case reflect.Pointer:
		s := strings.Repeat("x", units)
		if !f.IsNil() {
			s = f.Elem().String() + s
		}
		f.Set(reflect.ValueOf(&s))
	case reflect.Slice:
		for range units {
			f.Set(reflect.Append(f, newDefault(f.Type().Elem())))
		}
	}
}
