package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/meshrr/meshrr/agent/internal/backend"
	"github.com/meshrr/meshrr/agent/internal/events"
	"github.com/meshrr/meshrr/agent/internal/metrics"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// apply renders m and applies it when it differs, byte for byte, from the
// configuration the daemon runs (l.applied): the one path to the daemon,
// for reconciles and drains alike. Errors never carry a key of the model.
func (l *Loop) apply(ctx context.Context, m model.Model) error {
	keys := m.Secrets()
	out, err := l.Backend.Render(m)
	if err != nil {
		return redact(fmt.Errorf("render: %w", err), keys)
	}
	if bytes.Equal(out, l.applied) {
		l.Metrics.Applies.WithLabelValues(metrics.ResultUnchanged).Inc()
		return nil
	}
	if err := l.checkDaemon(ctx); err != nil {
		return err
	}
	start := l.now()
	err = redact(l.Backend.Apply(ctx, out), keys)
	took := l.now().Sub(start)
	l.Metrics.ApplyDuration.Observe(took.Seconds())
	if err != nil {
		l.Metrics.Applies.WithLabelValues(metrics.ResultError).Inc()
		l.Events.Warning(events.ReasonApplyFailed, "%s rejected or failed to apply the configuration; it keeps the previous one: %v", l.Backend.Name(), err)
		return fmt.Errorf("apply: %w", err)
	}
	l.applied = out
	l.Metrics.Applies.WithLabelValues(metrics.ResultApplied).Inc()
	l.Log.Info("configuration applied", "op", "apply", "duration", took, "bytes", len(out))
	return nil
}

// checkDaemon refuses to apply to a daemon the agent does not support
// (backend.Checked): nothing is applied, the pod stays not ready with the
// reason, and a Warning Event says which daemon and what is supported,
// once per daemon seen. A supported answer holds until the daemon
// restarts (restart.go).
func (l *Loop) checkDaemon(ctx context.Context) error {
	c, ok := l.Backend.(backend.Checked)
	if !ok || l.supported {
		return nil
	}
	err := c.CheckDaemon(ctx)
	var unsupported *backend.UnsupportedError
	switch {
	case errors.As(err, &unsupported):
		if msg := err.Error(); msg != l.unsupported {
			l.unsupported = msg
			l.Log.Error("daemon not supported; nothing applied", "op", "apply", "error", err)
			l.Events.Warning(events.ReasonDaemonUnsupported, "%v; nothing is applied to it", err)
		}
		return fmt.Errorf("apply: %w", err)
	case err != nil:
		return fmt.Errorf("apply: cannot ask the daemon its version: %w", err)
	}
	l.unsupported = ""
	l.supported = true
	return nil
}
