package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/meshrr/meshrr/agent/config"
)

// runDrain is the preStop step: ask the running agent to drain, keep the
// pod up for the drain time, then tell the daemon's preStop (DoneFile).
func runDrain(ctx context.Context, cfgPath string, stdout io.Writer) error {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	defer func() { _ = os.WriteFile(cfg.Drain.DoneFile, nil, 0o644) }()
	msg, err := controlPost(ctx, cfg, cfg.Drain.WaitTimeout.Duration+30*time.Second, "/drain")
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	fmt.Fprintf(stdout, "%s; staying up for %s\n", msg, cfg.Drain.Time.Duration)
	select {
	case <-time.After(cfg.Drain.Time.Duration):
	case <-ctx.Done():
		return errors.New("drain: interrupted before the drain time was over")
	}
	return nil
}
