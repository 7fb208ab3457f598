// Package cli is kubectl-meshrr: it reads every meshrr pod's status report
// (from the agent in the pod, through the API server's exec, else through
// its pod proxy) and prints a table per group (exit 2 when a group is
// degraded) or the live topology as Graphviz DOT.
package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshrr/meshrr/agent/internal/status"
)

const usage = `kubectl-meshrr shows the meshrr route reflector groups of a cluster, and
what an upgrade will do to their sessions.

Usage:
  kubectl meshrr status   [-n NAMESPACE | -A] [--kubeconfig FILE] [--json]
      a table per group: pods, sides, every session's state, uptime and
      prefixes; exit status 2 when a group is degraded (a pod not ready or
      failing, or a mesh or upstream session not Established)
  kubectl meshrr topology [-n NAMESPACE | -A] [--kubeconfig FILE]
      the live hierarchy as Graphviz DOT (render: dot -Tsvg)
  kubectl meshrr plan     [-n NAMESPACE] [-o table|json] RELEASE CHART [helm upgrade flags]
  kubectl meshrr plan     [-n NAMESPACE] [-o table|json] RELEASE --rendered FILE|-
      before a helm upgrade: what it does to each BGP session of each RR
      pod (reset, refresh, added, removed, untouched) and which pods it
      replaces; exit status 0 nothing resets, 3 something resets, 1 refused
`

// Exit statuses: the same as meshrr-agent status (package status).
const (
	ExitOK       = status.ExitOK
	ExitError    = status.ExitError
	ExitDegraded = status.ExitDegraded
)

// Main runs one command.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "plan" {
		return runPlan(args[1:], stdout, stderr)
	}
	if len(args) == 0 || (args[0] != "status" && args[0] != "topology") {
		fmt.Fprint(stderr, usage)
		return ExitError
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	ns := fs.String("n", "", "namespace (default: the kubeconfig's)")
	all := fs.Bool("A", false, "all namespaces")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	asJSON := fs.Bool("json", false, "status: print the reports as JSON")
	timeout := fs.Duration("timeout", 20*time.Second, "overall time limit")
	if err := fs.Parse(args[1:]); err != nil {
		return ExitError
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cfg, client, namespace, err := connect(*kubeconfig, *ns, *all)
	if err != nil {
		fmt.Fprintln(stderr, "kubectl-meshrr:", err)
		return ExitError
	}
	reports, err := Collect(ctx, client, namespace, ExecOrProxy(cfg, client))
	if err != nil {
		fmt.Fprintln(stderr, "kubectl-meshrr:", err)
		return ExitError
	}
	if len(reports) == 0 {
		fmt.Fprintf(stderr, "kubectl-meshrr: no meshrr pods (label app.kubernetes.io/name=meshrr) in %s\n", where(namespace))
		return ExitError
	}
	groups := status.Groups(reports)
	switch args[0] {
	case "topology":
		_, _ = stdout.Write(status.DOT(groups))
		return ExitOK
	}
	degraded := false
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(reports)
		degraded = slices.ContainsFunc(groups, func(g status.GroupView) bool { return len(g.Problems) > 0 })
	} else {
		degraded = status.Table(stdout, groups)
	}
	if degraded {
		return ExitDegraded
	}
	return ExitOK
}

func where(ns string) string {
	if ns == "" {
		return "any namespace"
	}
	return "namespace " + ns
}

func connect(kubeconfig, ns string, all bool) (*rest.Config, kubernetes.Interface, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, "", err
	}
	switch {
	case all:
		ns = ""
	case ns == "":
		if ns, _, err = cc.Namespace(); err != nil {
			return nil, nil, "", err
		}
	}
	return cfg, client, ns, nil
}

// Fetch reads one running pod's status report (JSON).
type Fetch func(ctx context.Context, p corev1.Pod, port int) ([]byte, error)

// Collect reads every meshrr pod's report; a pod that does not answer is
// reported not ready, with the reason.
func Collect(ctx context.Context, client kubernetes.Interface, namespace string, fetch Fetch) ([]status.Report, error) {
	pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=meshrr"})
	if err != nil {
		return nil, fmt.Errorf("list meshrr pods: %w", err)
	}
	items := pods.Items
	sort.Slice(items, func(i, j int) bool {
		return items[i].Namespace+"/"+items[i].Name < items[j].Namespace+"/"+items[j].Name
	})
	var out []status.Report
	nodes := nodeStates{client: client, seen: map[string]string{}}
	for _, p := range items {
		// a pod on a node that stopped answering cannot answer either (and
		// asking it would wait for the whole time limit)
		if lost := nodes.lost(ctx, p.Spec.NodeName); lost != "" {
			r := unanswered(p)
			r.NotReady = lost + ": " + recovery(p)
			out = append(out, r)
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, podTimeout)
		out = append(out, report(pctx, fetch, p))
		cancel()
	}
	return out, nil
}

// podTimeout bounds one pod's answer: a running agent answers from a read
// at most 2 s old.
const podTimeout = 5 * time.Second

// unanswered is the report of a pod that gave none, from the pod object.
func unanswered(p corev1.Pod) status.Report {
	return status.Report{Pod: p.Name, Namespace: p.Namespace, Side: p.Labels["meshrr.io/side"], Node: p.Spec.NodeName,
		Group: p.Labels["app.kubernetes.io/instance"] + "." + p.Labels["meshrr.io/group-name"], Peers: []status.Peer{}, Time: time.Now()}
}

// nodeStates reads the node of every listed pod, once per node.
type nodeStates struct {
	client kubernetes.Interface
	seen   map[string]string
}

// lost says why a node does not run its pods ("node w2 is not ready since
// ...: Kubelet stopped posting node status"), "" when it is ready or cannot
// be read (the user may not read nodes: the report says what it can).
func (n nodeStates) lost(ctx context.Context, name string) string {
	if name == "" {
		return ""
	}
	if v, ok := n.seen[name]; ok {
		return v
	}
	why := ""
	if node, err := n.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err == nil {
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
				why = fmt.Sprintf("node %s is not ready since %s (%s)", name, c.LastTransitionTime.UTC().Format(time.RFC3339), cmp.Or(c.Message, c.Reason))
			}
		}
	}
	n.seen[name] = why
	return why
}

// recovery says how a pod on a lost node is replaced, by its workload.
func recovery(p corev1.Pod) string {
	for _, o := range p.OwnerReferences {
		switch o.Kind {
		case "StatefulSet":
			return "a StatefulSet pod is not replaced until Kubernetes knows the node is down: once it is, kubectl taint node " + p.Spec.NodeName +
				" node.kubernetes.io/out-of-service=nodeshutdown:NoExecute (or kubectl delete node " + p.Spec.NodeName + "), and the StatefulSet starts it elsewhere"
		case "DaemonSet":
			return "a DaemonSet pod comes back with its node; its side's other RRs serve meanwhile"
		}
	}
	return "Kubernetes evicts it after the group's nodeLossTolerationSeconds and its Deployment starts another elsewhere"
}

func report(ctx context.Context, fetch Fetch, p corev1.Pod) status.Report {
	fallback := unanswered(p)
	port := metricsPort(p)
	if p.Status.Phase != corev1.PodRunning || port == 0 {
		fallback.NotReady = fmt.Sprintf("pod is %s", p.Status.Phase)
		return fallback
	}
	raw, err := fetch(ctx, p, port)
	if err != nil {
		fallback.NotReady = "status unreachable: " + err.Error()
		return fallback
	}
	var r status.Report
	if err := json.Unmarshal(raw, &r); err != nil {
		fallback.NotReady = "status unreadable: " + err.Error()
		return fallback
	}
	return r
}

// metricsPort is the agent container's "metrics" port (0: none).
func metricsPort(p corev1.Pod) int {
	for _, c := range p.Spec.Containers {
		if c.Name != "agent" {
			continue
		}
		for _, port := range c.Ports {
			if port.Name == "metrics" {
				return int(port.ContainerPort)
			}
		}
	}
	return 0
}
