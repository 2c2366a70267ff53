package wsman

import (
	"strconv"
	"strings"
)

// field maps one CIM property onto typed firmware state, so that Get renders
// and Put applies a class from one table.
type field[T any] struct {
	name string
	get  func(T) []string // nil: property omitted
	set  func(T, []string) error
	list bool
}

func fStr[T any](name string, p func(T) *string) field[T] {
	return field[T]{name: name,
		get: func(v T) []string { return []string{*p(v)} },
		set: func(v T, s []string) error { *p(v) = s[0]; return nil }}
}

// fStrOpt is omitted when empty.
func fStrOpt[T any](name string, p func(T) *string) field[T] {
	f := fStr(name, p)
	f.get = func(v T) []string {
		if *p(v) == "" {
			return nil
		}
		return []string{*p(v)}
	}
	return f
}

func fBool[T any](name string, p func(T) *bool) field[T] {
	return field[T]{name: name,
		get: func(v T) []string { return []string{strconv.FormatBool(*p(v))} },
		set: func(v T, s []string) error {
			b, err := strconv.ParseBool(strings.TrimSpace(s[0]))
			if err != nil {
				return FaultInvalidRepresentation()
			}
			*p(v) = b
			return nil
		}}
}

func fInt[T any](name string, p func(T) *int) field[T] {
	return field[T]{name: name,
		get: func(v T) []string { return []string{strconv.Itoa(*p(v))} },
		set: func(v T, s []string) error {
			n, err := strconv.Atoi(strings.TrimSpace(s[0]))
			if err != nil {
				return FaultInvalidRepresentation()
			}
			*p(v) = n
			return nil
		}}
}

func fList[T any](name string, p func(T) *[]string) field[T] {
	return field[T]{name: name, list: true,
		get: func(v T) []string { return *p(v) },
		set: func(v T, s []string) error { *p(v) = s; return nil }}
}

// fConst is a read-only property with a fixed or computed value.
func fConst[T any](name string, get func(T) string) field[T] {
	return field[T]{name: name, get: func(v T) []string { return []string{get(v)} }}
}

func ro[T any](f field[T]) field[T] { f.set = nil; return f }

func render[T any](in *Instance, fields []field[T], v T) *Instance {
	for _, f := range fields {
		vals := f.get(v)
		if vals == nil {
			continue
		}
		if f.list {
			in.L(f.name, vals...)
		} else {
			in.S(f.name, vals[0])
		}
	}
	return in
}

// apply sets the writable properties present in body; a list property
// absent from the body becomes empty (AMT replaces the instance).
func apply[T any](body *Element, fields []field[T], v T) error {
	for _, f := range fields {
		if f.set == nil {
			continue
		}
		if f.list {
			var vals []string
			for _, e := range body.All(f.name) {
				if e.Text != "" {
					vals = append(vals, e.Text)
				}
			}
			if err := f.set(v, vals); err != nil {
				return err
			}
			continue
		}
		if e := body.Child(f.name); e != nil {
			if err := f.set(v, []string{e.Text}); err != nil {
				return err
			}
		}
	}
	return nil
}

// system properties shared by AMT service classes.
func service(in *Instance, name string) *Instance {
	return in.S("CreationClassName", in.Class).S("ElementName", name).S("Name", name).
		S("SystemCreationClassName", "CIM_ComputerSystem").S("SystemName", "Intel(r) AMT")
}
