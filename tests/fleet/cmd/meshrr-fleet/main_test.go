package main

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Bad flags are refused before any session starts, naming the flag.
func TestRefusesBadFlags(t *testing.T) {
	ok := []string{"-rr", "127.0.40.1", "-as", "65000", "-sources", "127.0.44.0/22", "-n", "2", "-report", "/nonexistent/r.json"}
	with := func(flag, value string) []string {
		out := append([]string(nil), ok...)
		for i := 0; i < len(out); i += 2 {
			if out[i] == flag {
				out[i+1] = value
				return out
			}
		}
		return append(out, flag, value)
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"rr not an address":  {with("-rr", "rr.example"), "-rr"},
		"no AS":              {with("-as", "0"), "-as"},
		"AS too large":       {with("-as", "4294967296"), "-as"},
		"sources not a CIDR": {with("-sources", "127.0.44.1"), "-sources"},
		"too many sessions":  {with("-n", "1001"), "-sources, -n"},
		"no sessions":        {with("-n", "0"), "-sources, -n"},
		"routes over 128":    {with("-routes", "129"), "-routes"},
		"no report":          {with("-report", ""), "-report"},
		"stray argument":     {append(append([]string(nil), ok...), "extra"), "unexpected arguments"},
	} {
		err := run(tc.args, io.Discard)
		if assert.Error(t, err, name) {
			assert.Contains(t, err.Error(), tc.want, name)
		}
	}
}
