// Package events records Kubernetes Events on the agent's own pod, in
// operator language ("upstream peer 10.244.1.7 replaced: ...").
package events

import (
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// Reasons of the Events the agent records.
const (
	ReasonPeersChanged       = "PeersChanged"
	ReasonUpstreamReplaced   = "UpstreamReplaced"
	ReasonApplyFailed        = "ApplyFailed"
	ReasonConfigRejected     = "ConfigRejected"
	ReasonConfigReloaded     = "ConfigReloaded"
	ReasonDraining           = "Draining"
	ReasonDrainFailed        = "DrainFailed"
	ReasonDaemonRestarted    = "DaemonRestarted"
	ReasonDaemonUnsupported  = "DaemonUnsupported"
	ReasonLicenseLimit       = "LicenseLimitExceeded"
	ReasonMemoryLimitLow     = "MemoryLimitLow"
	ReasonUntrusted          = "UntrustedEndpoints"
	ReasonChangeHeld         = "ChangeHeld"
	ReasonSettingsKept       = "SessionSettingsKept"
	ReasonKeyRefused         = "TCPMD5KeyRefused"
	ReasonKeyAccepted        = "TCPMD5KeyAccepted"
	ReasonKeyRollover        = "TCPMD5KeyRollover"
	ReasonRolloverRefused    = "TCPMD5RolloverRefused"
	ReasonRangeRefused       = "ClientRangeRefused"
	ReasonRangeAccepted      = "ClientRangeAccepted"
	ReasonExtraConfigRefused = "ExtraConfigRefused"
	ReasonExtraConfigApplied = "ExtraConfigApplied"
	ReasonClientDisabled     = "ClientDisabled"
	ReasonClientEnabled      = "ClientEnabled"
)

// Recorder records Events about the agent's pod.
type Recorder interface {
	Normal(reason, format string, args ...any)
	Warning(reason, format string, args ...any)
}

// Pod identifies the agent's pod (downward API).
type Pod struct {
	Name, Namespace, UID string
}

type k8sRecorder struct {
	rec record.EventRecorder
	ref *corev1.ObjectReference
}

// New returns a recorder writing Events through the API server. stop
// flushes and ends the broadcaster.
func New(client kubernetes.Interface, pod Pod, log *slog.Logger) (r Recorder, stop func()) {
	b := record.NewBroadcaster()
	b.StartStructuredLogging(0)
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events(pod.Namespace)})
	rec := b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "meshrr-agent"})
	ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, Namespace: pod.Namespace, UID: types.UID(pod.UID)}
	log.Debug("recording events", "pod", pod.Namespace+"/"+pod.Name)
	return &k8sRecorder{rec: rec, ref: ref}, b.Shutdown
}

func (k *k8sRecorder) Normal(reason, format string, args ...any) {
	k.rec.Event(k.ref, corev1.EventTypeNormal, reason, fmt.Sprintf(format, args...))
}

func (k *k8sRecorder) Warning(reason, format string, args ...any) {
	k.rec.Event(k.ref, corev1.EventTypeWarning, reason, fmt.Sprintf(format, args...))
}

// Log returns a recorder that only logs (outside Kubernetes, in tests).
func Log(log *slog.Logger) Recorder { return logRecorder{log} }

type logRecorder struct{ log *slog.Logger }

func (l logRecorder) Normal(reason, format string, args ...any) {
	l.log.Info(fmt.Sprintf(format, args...), "event", reason)
}

func (l logRecorder) Warning(reason, format string, args ...any) {
	l.log.Warn(fmt.Sprintf(format, args...), "event", reason)
}
