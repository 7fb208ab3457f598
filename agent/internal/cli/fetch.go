package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
)

// statusCommand is what the agent container runs to print its pod's report
// (read over the agent's control socket, inside the pod).
var statusCommand = []string{"/meshrr-agent", "status", "--json", "--config", "/etc/meshrr/config.yaml"}

// ExecOrProxy reads a pod's report from its agent through the API server's
// exec, which needs no network path to the pod: the chart's NetworkPolicy
// admits only its metricsFrom to the status port, and the API server's
// pod proxy connects from the control plane's addresses. A user without
// pods/exec falls back to the pod proxy.
func ExecOrProxy(cfg *rest.Config, client kubernetes.Interface) Fetch {
	proxy := Proxy(client)
	return func(ctx context.Context, p corev1.Pod, port int) ([]byte, error) {
		raw, err := execStatus(ctx, cfg, client, p)
		if apierrors.IsForbidden(err) {
			return proxy(ctx, p, port)
		}
		return raw, err
	}
}

// Proxy reads a pod's report from its status port through the API
// server's pod proxy.
func Proxy(client kubernetes.Interface) Fetch {
	return func(ctx context.Context, p corev1.Pod, port int) ([]byte, error) {
		w := client.CoreV1().Pods(p.Namespace).ProxyGet("http", p.Name, strconv.Itoa(port), "/status", nil)
		if w == nil {
			return nil, errors.New("no pod proxy")
		}
		return w.DoRaw(ctx)
	}
}

func execStatus(ctx context.Context, cfg *rest.Config, client kubernetes.Interface, p corev1.Pod) ([]byte, error) {
	req := client.CoreV1().RESTClient().Post().Resource("pods").Namespace(p.Namespace).Name(p.Name).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "agent", Command: statusCommand, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	spdy, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return nil, err
	}
	ws, err := remotecommand.NewWebSocketExecutor(cfg, "GET", req.URL().String())
	if err != nil {
		return nil, err
	}
	// kubectl's choice: WebSockets, SPDY where the server or a proxy cannot upgrade
	exec, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	if err := exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil {
		if msg := bytes.TrimSpace(stderr.Bytes()); len(msg) > 0 {
			return nil, fmt.Errorf("%w: %s", err, msg)
		}
		return nil, err
	}
	return stdout.Bytes(), nil
}
