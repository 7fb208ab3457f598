// kindnet-lite is the CNI helper of the offline kind clusters (kindnetd's
// source is not on the Go module proxy). It watches Nodes (a client-go
// informer: it acts on changes, it does not poll) and keeps the node's
// ptp + host-local + portmap conflist for its podCIDRs (one or two
// families), routes to the other nodes' podCIDRs through their address of
// the same family. It masquerades nothing: pods reach the routers on the
// kind network with their own addresses, as on a routed BGP fabric (the e2e
// routers peer with pod addresses). NetworkPolicy is kube-network-policies'
// (manifests/default-cni.yaml).
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

const confPath = "/etc/cni/net.d/10-kindnet.conflist"

func main() {
	node := os.Getenv("NODE_NAME")
	if node == "" {
		log.Fatal("NODE_NAME is required")
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		log.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	_ = os.WriteFile("/proc/sys/net/ipv6/conf/all/forwarding", []byte("1"), 0o644)

	factory := informers.NewSharedInformerFactory(client, 0)
	nodes := factory.Core().V1().Nodes()
	changed := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: poke, UpdateFunc: func(_, n any) { poke(n) }, DeleteFunc: poke,
	}); err != nil {
		log.Fatal(err)
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())

	programmed := map[string]string{} // podCIDR -> next hop it is routed through
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		all, err := nodes.Lister().List(labels.Everything())
		if err != nil {
			log.Print(err)
			continue
		}
		want := Desired(node, all)
		if want.Conflist != "" {
			if cur, _ := os.ReadFile(confPath); strings.TrimSpace(string(cur)) != want.Conflist {
				if err := writeFile(confPath, want.Conflist); err != nil {
					log.Print(err)
				} else {
					log.Printf("wrote %s", confPath)
				}
			}
		}
		for cidr, via := range want.Routes {
			if programmed[cidr] == via {
				continue
			}
			if out, err := exec.Command("ip", "route", "replace", cidr, "via", via).CombinedOutput(); err != nil {
				log.Printf("route %s via %s: %v: %s", cidr, via, err, out)
				continue
			}
			programmed[cidr] = via
			log.Printf("route %s via %s", cidr, via)
		}
		for cidr := range programmed {
			if _, ok := want.Routes[cidr]; !ok {
				_ = exec.Command("ip", "route", "del", cidr).Run()
				delete(programmed, cidr)
				log.Printf("route %s removed", cidr)
			}
		}
	}
}

// State is what one node needs: its CNI conflist ("" until the node has a
// podCIDR) and a route per other node's podCIDR.
type State struct {
	Conflist string
	Routes   map[string]string // podCIDR -> next hop
}

// Desired computes the State of node self from every Node. Pure.
func Desired(self string, nodes []*corev1.Node) State {
	st := State{Routes: map[string]string{}}
	for _, n := range nodes {
		if n.Name == self {
			st.Conflist = conflist(n.Spec.PodCIDRs)
			continue
		}
		for _, c := range n.Spec.PodCIDRs {
			for _, a := range n.Status.Addresses {
				if a.Type == corev1.NodeInternalIP && isV6(a.Address) == isV6(c) {
					st.Routes[c] = a.Address
					break
				}
			}
		}
	}
	return st
}

func conflist(cidrs []string) string {
	if len(cidrs) == 0 {
		return ""
	}
	var ranges, routes []string
	for _, c := range cidrs {
		ranges = append(ranges, fmt.Sprintf(`[{"subnet":%q}]`, c))
		dst := "0.0.0.0/0"
		if isV6(c) {
			dst = "::/0"
		}
		routes = append(routes, fmt.Sprintf(`{"dst":%q}`, dst))
	}
	return fmt.Sprintf(`{"cniVersion":"0.3.1","name":"kindnet","plugins":[{"type":"ptp","ipMasq":false,"ipam":{"type":"host-local","dataDir":"/run/cni-ipam-state","routes":[%s],"ranges":[%s]},"mtu":1500},{"type":"portmap","capabilities":{"portMappings":true}}]}`,
		strings.Join(routes, ","), strings.Join(ranges, ","))
}

func isV6(s string) bool { return strings.Contains(s, ":") }

func writeFile(path, content string) error {
	if err := os.WriteFile(path+".tmp", []byte(content+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}
