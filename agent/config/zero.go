package config

import (
	"reflect"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// explicitZeros finds numbers and durations written as 0 that SetDefaults
// replaced with a default: a Go zero value cannot tell "0" from "left
// out", so without this check `hold: 0` would silently become the default
// hold time. Fields whose 0 has a meaning (maxPrefixes: no limit) keep
// their 0 and are not reported. c must be defaulted; b is the file.
func explicitZeros(b []byte, c *Config) []error {
	var raw any
	if yaml.Unmarshal(b, &raw) != nil {
		return nil // the strict decode reported it
	}
	var e errs
	zeroWalk(&e, raw, reflect.ValueOf(c).Elem(), nil)
	return e.list
}

var durationType = reflect.TypeOf(Duration{})

func zeroWalk(e *errs, raw any, v reflect.Value, path *field.Path) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch {
	case v.Type() == durationType:
		if s, ok := raw.(string); ok {
			if d, err := time.ParseDuration(s); err == nil && d == 0 && v.Interface().(Duration).Duration != 0 {
				e.add(path, "%s: a zero duration is not a value here; leave it out for the default (%s)", s, v.Interface().(Duration).Duration)
			}
		}
	case v.Kind() == reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			return
		}
		for i := 0; i < v.NumField(); i++ {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			if r, ok := m[name]; ok && name != "" && name != "-" {
				zeroWalk(e, r, v.Field(i), path.Child(name))
			}
		}
	case v.Kind() == reflect.Slice:
		list, ok := raw.([]any)
		if !ok {
			return
		}
		for i := 0; i < len(list) && i < v.Len(); i++ {
			zeroWalk(e, list[i], v.Index(i), path.Index(i))
		}
	case v.CanInt() || v.CanUint() || v.CanFloat():
		if n, ok := raw.(float64); ok && n == 0 && !v.IsZero() {
			e.add(path, "0 is not a value here; leave it out for the default (%v)", v.Interface())
		}
	}
}
