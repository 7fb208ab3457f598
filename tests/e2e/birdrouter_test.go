//go:build e2e

package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/tests/e2e/routers"
)

// BirdRouter is a BIRD container on the kind network, outside the cluster
// (routers.Env.StartBIRD): the scale suites' feeders, receivers and client
// fleets, where FRR's JSON tables would cost more than the routes they
// carry.
type BirdRouter struct {
	Name string
	Addr netip.Addr
	// Dir is the router's /etc/bird: bird.conf includes conf.d/*.conf, so
	// a file written there takes effect at the next configure.
	Dir string
}

// startBird runs a BIRD router with the given router ID whose
// configuration is whatever the caller has put (or puts later) in
// dir/conf.d; dir/setup.sh, when present, runs first in the container. It
// is removed at the end of the test.
func startBird(t *testing.T, name, routerID, dir string) *BirdRouter {
	t.Helper()
	rr, err := routerEnv().StartBIRD(name, routerID, dir)
	require.NoError(t, err, "BIRD router %s", name)
	r := &BirdRouter{Name: rr.Container, Addr: rr.Addr, Dir: dir}
	t.Cleanup(func() {
		if t.Failed() {
			o, _ := r.birdc("show", "protocols")
			logs, _ := exec.Command("docker", "logs", "--tail", "30", r.Name).CombinedOutput()
			t.Logf("=== BIRD router %s\n%s\n%s", name, o, logs)
		}
		routers.Stop(r.Name)
	})
	return r
}

// birdc runs one birdc command on the router.
func (r *BirdRouter) birdc(args ...string) (string, error) { return routers.Birdc(r.Name, args...) }

// configure writes conf.d/name and reconfigures the router.
func (r *BirdRouter) configure(t *testing.T, name, conf string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(r.Dir, "conf.d", name), []byte(conf), 0o644))
	out, err := r.birdc("configure")
	require.NoError(t, err)
	require.Contains(t, out, "Reconfigured", "%s: configure", r.Name)
}

var birdCountRE = regexp.MustCompile(`(\d+) of \d+ routes for (\d+) networks`)

// routeCount is how many routes of master4 came from a protocol (every
// route when protocol is empty).
func (r *BirdRouter) routeCount(protocol string) (int, error) {
	args := []string{"show", "route"}
	if protocol != "" {
		args = append(args, "protocol", protocol)
	}
	out, err := r.birdc(append(args, "count")...)
	if err != nil {
		return 0, err
	}
	routes, _, err := birdCount(out)
	return routes, err
}

// birdCount reads the routes (paths) and networks (prefixes) birdc's
// `show route ... count` prints for its first table.
func birdCount(out string) (routes, networks int, err error) {
	m := birdCountRE.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("no route count in %q", out)
	}
	routes, _ = strconv.Atoi(m[1])
	networks, _ = strconv.Atoi(m[2])
	return routes, networks, nil
}

// protocolLines maps each protocol to its line of `show protocols`
// (name, state, since, info): unchanged while a session has not flapped.
func (r *BirdRouter) protocolLines() (map[string]string, error) {
	out, err := r.birdc("show", "protocols")
	if err != nil {
		return nil, err
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 2 {
			lines[f[0]] = strings.Join(f, " ")
		}
	}
	return lines, nil
}

// protocolLine is one protocol's line of `show protocols`.
func (r *BirdRouter) protocolLine(name string) (string, error) {
	lines, err := r.protocolLines()
	if err != nil {
		return "", err
	}
	if l, ok := lines[name]; ok {
		return l, nil
	}
	return "", fmt.Errorf("%s: no protocol %s", r.Name, name)
}
