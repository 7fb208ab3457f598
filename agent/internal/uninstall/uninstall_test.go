package uninstall

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// Bad flags name the flag and what to give (the behaviour against a real
// API server is the e2e suite's: helm uninstall of a region).
func TestValidateNamesTheFlag(t *testing.T) {
	ok := Options{Namespace: "core", Selector: "app.kubernetes.io/instance=core", Timeout: time.Minute}
	assert.NoError(t, ok.Validate())
	for flag, o := range map[string]Options{
		"--namespace": {Selector: ok.Selector, Timeout: time.Minute},
		"--selector":  {Namespace: "core", Timeout: time.Minute},
		"--timeout":   {Namespace: "core", Selector: ok.Selector},
	} {
		err := o.Validate()
		if assert.Error(t, err, flag) {
			assert.Contains(t, err.Error(), flag)
		}
	}
	bad := ok
	bad.Selector = "app in (("
	if err := bad.Validate(); assert.Error(t, err) {
		assert.Contains(t, err.Error(), "--selector")
	}
}
