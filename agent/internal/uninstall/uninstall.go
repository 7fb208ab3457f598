// Package uninstall stops a release's route reflectors before Helm deletes
// anything: run as the chart's pre-delete hook, it scales every workload of
// the release to zero and waits until their pods are gone. The Services,
// RBAC and drain Leases still exist meanwhile, so every pod drains the way
// it does in a rolling update (one pod of a group at a time, routes kept
// until the last one stops), instead of losing its discovery Service and
// its Lease permission first and waiting out its whole timeout.
package uninstall

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// NoNodeLabel is the node label a stopped DaemonSet's pods are made to
// require: no node carries it, so the DaemonSet controller removes them.
// The chart's DaemonSets require its absence (operator DoesNotExist) in
// their node affinity, and the hook turns that term into Exists: a field
// the release's manifest sets, which `helm rollback` and the next `helm
// upgrade` set back, so an interrupted uninstall is undone by either (a
// key the manifest did not have would stay).
const NoNodeLabel = "meshrr.io/uninstalling"

// Options of one run.
type Options struct {
	Client    kubernetes.Interface
	Namespace string
	// Selector selects the release's workloads and pods.
	Selector string
	// Timeout bounds the wait for the pods to go.
	Timeout time.Duration
	// Poll is how often the remaining pods are counted (default 1 s).
	Poll time.Duration
	Log  *slog.Logger
}

// Report says what a run stopped.
type Report struct {
	Workloads []string // kind/name, sorted
	Pods      int      // pods there were when the run began
	Remaining []string // pods still there when Timeout ran out
	Took      time.Duration
}

func (r Report) String() string {
	s := fmt.Sprintf("stopped %d pods of %s in %s", r.Pods, strings.Join(r.Workloads, ", "), r.Took.Round(100*time.Millisecond))
	if len(r.Remaining) > 0 {
		s += fmt.Sprintf("; still stopping when the wait ran out: %s", strings.Join(r.Remaining, ", "))
	}
	return s
}

// Validate names the option that is wrong.
func (o Options) Validate() error {
	switch {
	case o.Namespace == "":
		return fmt.Errorf("--namespace is required: the release namespace")
	case o.Selector == "":
		return fmt.Errorf("--selector is required: the labels of the release's workloads, e.g. app.kubernetes.io/instance=NAME")
	case o.Timeout <= 0:
		return fmt.Errorf("--timeout must be positive, e.g. 300s")
	}
	if _, err := labels.Parse(o.Selector); err != nil {
		return fmt.Errorf("--selector: %w", err)
	}
	return nil
}

// Run scales the selected Deployments and StatefulSets to zero, makes the
// selected DaemonSets' pods require a label no node has, and waits until
// no selected pod is left (or Timeout). Running out of time is reported,
// not an error: an uninstall must not be blocked by a pod that will not stop.
func Run(ctx context.Context, o Options) (Report, error) {
	if err := o.Validate(); err != nil {
		return Report{}, err
	}
	start := time.Now()
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := o.Client
	list := metav1.ListOptions{LabelSelector: o.Selector}
	var rep Report
	pods, err := c.CoreV1().Pods(o.Namespace).List(ctx, list)
	if err != nil {
		return rep, fmt.Errorf("list pods: %w", err)
	}
	rep.Pods = len(pods.Items)

	deps, err := c.AppsV1().Deployments(o.Namespace).List(ctx, list)
	if err != nil {
		return rep, fmt.Errorf("list deployments: %w", err)
	}
	for _, d := range deps.Items {
		if err := scaleToZero(ctx, c.AppsV1().Deployments(o.Namespace), log, "Deployment/"+d.Name, d.Name); err != nil {
			return rep, err
		}
		rep.Workloads = append(rep.Workloads, "Deployment/"+d.Name)
	}
	sts, err := c.AppsV1().StatefulSets(o.Namespace).List(ctx, list)
	if err != nil {
		return rep, fmt.Errorf("list statefulsets: %w", err)
	}
	for _, s := range sts.Items {
		if err := scaleToZero(ctx, c.AppsV1().StatefulSets(o.Namespace), log, "StatefulSet/"+s.Name, s.Name); err != nil {
			return rep, err
		}
		rep.Workloads = append(rep.Workloads, "StatefulSet/"+s.Name)
	}
	dss, err := c.AppsV1().DaemonSets(o.Namespace).List(ctx, list)
	if err != nil {
		return rep, fmt.Errorf("list daemonsets: %w", err)
	}
	for _, d := range dss.Items {
		if err := stopDaemonSet(ctx, c, &d); err != nil {
			return rep, err
		}
		log.Info("stopping", "op", "uninstall", "workload", "DaemonSet/"+d.Name)
		rep.Workloads = append(rep.Workloads, "DaemonSet/"+d.Name)
	}
	slices.Sort(rep.Workloads)

	// the drains run in the pods; what is left to do is to wait for them
	poll := o.Poll
	if poll <= 0 {
		poll = time.Second
	}
	var remaining []string
	err = wait.PollUntilContextTimeout(ctx, poll, o.Timeout, true, func(ctx context.Context) (bool, error) {
		ps, err := c.CoreV1().Pods(o.Namespace).List(ctx, list)
		if err != nil {
			log.Warn("cannot list pods; retrying", "op", "uninstall", "error", err)
			return false, nil
		}
		remaining = remaining[:0]
		for _, p := range ps.Items {
			remaining = append(remaining, p.Name)
		}
		return len(remaining) == 0, nil
	})
	rep.Took = time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		slices.Sort(remaining)
		rep.Remaining = remaining
	}
	return rep, nil
}

// scaler is the scale subresource of Deployments and StatefulSets.
type scaler interface {
	GetScale(ctx context.Context, name string, opts metav1.GetOptions) (*autoscalingv1.Scale, error)
	UpdateScale(ctx context.Context, name string, scale *autoscalingv1.Scale, opts metav1.UpdateOptions) (*autoscalingv1.Scale, error)
}

func scaleToZero(ctx context.Context, c scaler, log *slog.Logger, what, name string) error {
	s, err := c.GetScale(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("scale %s to 0: %w", what, err)
	}
	was := s.Spec.Replicas
	if was != 0 {
		s.Spec.Replicas = 0
		if _, err := c.UpdateScale(ctx, name, s, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("scale %s to 0: %w", what, err)
		}
	}
	log.Info("stopping", "op", "uninstall", "workload", what, "replicas", was)
	return nil
}

// StopPatch is the strategic merge patch that makes a DaemonSet's pods
// require NoNodeLabel: its required node affinity becomes that one term
// (the list is replaced whole).
var StopPatch = fmt.Sprintf(`{"spec":{"template":{"spec":{"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":%q,"operator":"Exists"}]}]}}}}}}}`, NoNodeLabel)

// stopDaemonSet makes the DaemonSet's pods require NoNodeLabel: the
// controller deletes them all, and their drains take turns on the Lease.
func stopDaemonSet(ctx context.Context, c kubernetes.Interface, d *appsv1.DaemonSet) error {
	if _, err := c.AppsV1().DaemonSets(d.Namespace).Patch(ctx, d.Name, types.StrategicMergePatchType, []byte(StopPatch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("stop DaemonSet/%s: %w", d.Name, err)
	}
	return nil
}
