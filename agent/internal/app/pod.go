package app

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/meshrr/meshrr/agent/internal/plan"
)

// podEnv is the pod described by the downward API.
type podEnv struct {
	self plan.Self
	uid  string
	node string
	// cluster: the pod's own addresses on the pod network (not when the
	// pod uses the node's network) and the API server's Service address
	cluster []plan.ClusterAddr
}

func readPod(getenv func(string) string) (podEnv, error) {
	p := podEnv{self: plan.Self{Name: getenv("POD_NAME"), Namespace: getenv("POD_NAMESPACE"), Side: getenv("MESHRR_SIDE")}, uid: getenv("POD_UID"), node: getenv("NODE_NAME")}
	var problems []string
	if p.self.Name == "" {
		problems = append(problems, "POD_NAME is not set (downward API metadata.name)")
	}
	if p.self.Namespace == "" {
		problems = append(problems, "POD_NAMESPACE is not set (downward API metadata.namespace)")
	}
	ips := getenv("POD_IPS")
	if ips == "" {
		ips = getenv("POD_IP")
	}
	for _, s := range strings.Split(ips, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			problems = append(problems, fmt.Sprintf("POD_IPS: %q is not an IP address", s))
			continue
		}
		p.self.Addrs = append(p.self.Addrs, a.Unmap())
	}
	if len(p.self.Addrs) == 0 && ips == "" {
		problems = append(problems, "POD_IPS is not set (downward API status.podIPs)")
	}
	if host, err := netip.ParseAddr(getenv("HOST_IP")); err == nil {
		for _, a := range p.self.Addrs {
			if a != host.Unmap() {
				p.cluster = append(p.cluster, plan.ClusterAddr{Addr: a, What: "this pod's address " + a.String() + " (the pod network)"})
			}
		}
	}
	if api, err := netip.ParseAddr(getenv("KUBERNETES_SERVICE_HOST")); err == nil {
		p.cluster = append(p.cluster, plan.ClusterAddr{Addr: api.Unmap(), What: "the API server's Service address " + api.String() + " (the service network)"})
	}
	if problems != nil {
		return p, errors.New(strings.Join(problems, "; "))
	}
	return p, nil
}
