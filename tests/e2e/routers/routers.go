// Package routers runs the routers outside the cluster that the e2e suites
// and make demo peer with: FRR and BIRD containers on the kind Docker
// network, each routing the pod networks through their nodes, labelled
// with their cluster so that tests/kind/cluster.sh down removes them. The
// files a router starts with are the templates in templates/.
package routers

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
)

//go:embed templates
var files embed.FS

var tmpl = template.Must(template.ParseFS(files, "templates/*.tmpl"))

// Env is what starting a router needs of the cluster and the harness.
type Env struct {
	Cluster    string // the kind cluster: the containers' label
	Kubectl    string // the kubectl binary (the nodes' pod CIDRs)
	Kubeconfig string
	Kind       string // the kind binary (Steer)
	FRRImage   string
	BIRDImage  string
}

// CacheDir is the harness's kind folder, as tests/kind/versions.sh sets
// it: MESHRR_CACHE, else XDG_CACHE_HOME/meshrr, else ~/.cache/meshrr,
// then kind.
func CacheDir() string {
	if c := os.Getenv("MESHRR_CACHE"); c != "" {
		return filepath.Join(c, "kind")
	}
	if c := os.Getenv("XDG_CACHE_HOME"); c != "" {
		return filepath.Join(c, "meshrr", "kind")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "meshrr", "kind")
}

// EnvFromEnvironment is the Env the harness scripts use: CLUSTER (default
// meshrr-e2e), KUBECONFIG (default the cluster's file in CacheDir),
// FRR_IMAGE and BIRD_IMAGE (default the images make builds).
func EnvFromEnvironment() Env {
	get := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	cluster := get("CLUSTER", "meshrr-e2e")
	return Env{
		Cluster:    cluster,
		Kubectl:    filepath.Join(CacheDir(), "bin", "kubectl"),
		Kubeconfig: get("KUBECONFIG", filepath.Join(CacheDir(), "kubeconfig-"+cluster)),
		Kind:       filepath.Join(CacheDir(), "bin", "kind"),
		FRRImage:   get("FRR_IMAGE", "meshrr/frr:dev"),
		BIRDImage:  get("BIRD_IMAGE", "meshrr/bird:dev"),
	}
}

// Router is a running router container and its address on the kind
// network.
type Router struct {
	Container string
	Addr      netip.Addr
}

// StartFRR runs an FRR router (zebra, staticd, bgpd, bfdd) whose frr.conf
// is body under the standard header, with forwarding on.
func (e Env) StartFRR(name, body string) (Router, error) {
	dir, err := os.MkdirTemp("", "meshrr-frr.")
	if err != nil {
		return Router{}, err
	}
	daemons, err := files.ReadFile("templates/daemons")
	if err != nil {
		return Router{}, err
	}
	var conf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&conf, "frr.conf.tmpl", struct{ Name, Body string }{name, body}); err != nil {
		return Router{}, err
	}
	for f, b := range map[string][]byte{"daemons": daemons, "frr.conf": conf.Bytes(), "vtysh.conf": nil} {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return Router{}, err
		}
	}
	return e.run("frr", name, e.FRRImage, dir+":/etc/frr", []string{"--cap-add", "SYS_ADMIN"},
		"chown -R frr:frr /etc/frr && /usr/lib/frr/frrinit.sh start && exec sleep infinity")
}

// StartBIRD runs a BIRD router whose /etc/bird is dir: StartBIRD writes
// dir/bird.conf (the router id, and an include of conf.d/*.conf, where the
// caller puts the rest, before or later); dir/setup.sh, when present, runs
// first in the container (e.g. to add addresses).
func (e Env) StartBIRD(name, routerID, dir string) (Router, error) {
	if err := os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755); err != nil {
		return Router{}, err
	}
	var conf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&conf, "bird.conf.tmpl", struct{ RouterID string }{routerID}); err != nil {
		return Router{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "bird.conf"), conf.Bytes(), 0o644); err != nil {
		return Router{}, err
	}
	return e.run("bird", name, e.BIRDImage, dir+":/etc/bird:ro", []string{"--user", "0"},
		"{ [ ! -f /etc/bird/setup.sh ] || bash /etc/bird/setup.sh; } && exec bird -f -c /etc/bird/bird.conf -s /run/bird.ctl")
}

// run starts a router container: the pod routes first, then script.
func (e Env) run(kind, name, image, volume string, extra []string, script string) (Router, error) {
	routes, err := e.podRoutes()
	if err != nil {
		return Router{}, err
	}
	container := fmt.Sprintf("meshrr-%s-%s-%d-%d", kind, name, os.Getpid(), rand.IntN(1<<15))
	args := append([]string{"run", "-d", "--name", container, "--network", "kind"}, extra...)
	args = append(args, "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW", "--sysctl", "net.ipv4.ip_forward=1",
		"-v", volume, "--label", "meshrr.router=1", "--label", "meshrr.cluster="+e.Cluster,
		"--entrypoint", "bash", image, "-c", routes+script)
	if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
		return Router{}, fmt.Errorf("docker run %s: %v: %s", container, err, out)
	}
	out, err := exec.Command("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container).Output()
	if err != nil {
		return Router{}, fmt.Errorf("docker inspect %s: %w", container, err)
	}
	addr, err := netip.ParseAddr(strings.TrimSpace(string(out)))
	if err != nil {
		return Router{}, fmt.Errorf("%s: address %q: %w", container, out, err)
	}
	return Router{Container: container, Addr: addr}, nil
}

// podRoutes reads the cluster's nodes for routesVia.
func (e Env) podRoutes() (string, error) {
	cmd := exec.Command(e.Kubectl, "get", "nodes", "-o", "json")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.Kubeconfig)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("kubectl get nodes: %w", err)
	}
	return routesVia(out)
}

// routesVia is the shell commands that route each pod CIDR of a node list
// (kubectl get nodes -o json) through its node's address of the same
// family (dual stack too), each followed by &&.
func routesVia(list []byte) (string, error) {
	var nodes struct {
		Items []struct {
			Spec struct {
				PodCIDRs []string `json:"podCIDRs"`
			} `json:"spec"`
			Status struct {
				Addresses []struct{ Type, Address string } `json:"addresses"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal(list, &nodes); err != nil {
		return "", fmt.Errorf("kubectl get nodes: %w", err)
	}
	var b strings.Builder
	for _, n := range nodes.Items {
		for _, c := range n.Spec.PodCIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return "", fmt.Errorf("node pod CIDR %q: %w", c, err)
			}
			for _, a := range n.Status.Addresses {
				via, err := netip.ParseAddr(a.Address)
				if a.Type != "InternalIP" || err != nil || via.Is4() != p.Addr().Is4() {
					continue
				}
				family := ""
				if !via.Is4() {
					family = "-6 "
				}
				fmt.Fprintf(&b, "ip %sroute replace %s via %s && ", family, p, via)
			}
		}
	}
	return b.String(), nil
}

// Stop removes router containers (those already gone are no error).
func Stop(containers ...string) {
	for _, c := range containers {
		_ = exec.Command("docker", "rm", "-f", c).Run()
	}
}

// Steer makes every node of the cluster route prefix via the address
// (e.g. to a router's anycast loopback).
func (e Env) Steer(prefix netip.Prefix, via netip.Addr) error {
	out, err := exec.Command(e.Kind, "get", "nodes", "--name", e.Cluster).Output()
	if err != nil {
		return fmt.Errorf("kind get nodes: %w", err)
	}
	for _, n := range strings.Fields(string(out)) {
		if out, err := exec.Command("docker", "exec", n, "ip", "route", "replace", prefix.String(), "via", via.String()).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: ip route replace %s via %s: %v: %s", n, prefix, via, err, out)
		}
	}
	return nil
}

// Route is a prefix in an FRR router's BGP table: its best path, and the
// first next hop of every valid path.
type Route struct {
	Prefix    string
	LocalPref int
	NextHop   string
	NextHops  []string
}

// Routes reads an FRR router's BGP table of a family (ipv4, ipv6).
func Routes(container, family string) (map[string]Route, error) {
	var tab struct {
		Routes map[string][]struct {
			Bestpath bool                  `json:"bestpath"`
			LocPrf   int                   `json:"locPrf"`
			Valid    bool                  `json:"valid"`
			Nexthops []struct{ IP string } `json:"nexthops"`
		} `json:"routes"`
	}
	if err := VtyshJSON(container, "show bgp "+family+" unicast json", &tab); err != nil {
		return nil, err
	}
	res := map[string]Route{}
	for p, paths := range tab.Routes {
		var all []string
		for _, path := range paths {
			if path.Valid && len(path.Nexthops) > 0 {
				all = append(all, path.Nexthops[0].IP)
			}
		}
		slices.Sort(all)
		for _, path := range paths {
			if path.Bestpath {
				r := Route{Prefix: p, LocalPref: path.LocPrf, NextHops: all}
				if len(path.Nexthops) > 0 {
					r.NextHop = path.Nexthops[0].IP
				}
				res[p] = r
			}
		}
	}
	return res, nil
}

// Vtysh runs one FRR command on a router and returns its answer.
func Vtysh(container, cmd string) ([]byte, error) {
	out, err := exec.Command("docker", "exec", container, "vtysh", "-c", cmd).Output()
	if err != nil {
		return nil, fmt.Errorf("%s: vtysh %q: %w", container, cmd, err)
	}
	return out, nil
}

// VtyshJSON runs one FRR show command ending in "json" on a router and
// decodes its answer into v.
func VtyshJSON(container, cmd string, v any) error {
	out, err := Vtysh(container, cmd)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("%s: vtysh %q: %v: %s", container, cmd, err, out)
	}
	return nil
}

// Birdc runs one birdc command on a BIRD router (docker exec straight
// away: fast enough to sample a table several times a second).
func Birdc(container string, args ...string) (string, error) {
	out, err := exec.Command("docker", append([]string{"exec", container, "birdc", "-s", "/run/bird.ctl"}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: birdc %s: %v: %s", container, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
