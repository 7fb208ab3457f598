package app

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/model"
)

// runSessions prints the daemon's sessions as JSON (one array).
func runSessions(ctx context.Context, cfgPath string, stdout io.Writer) error {
	c, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	be, err := newBackend(c, func() *config.Config { return c })
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ss, err := be.Sessions(ctx)
	if err != nil {
		return err
	}
	if ss == nil {
		ss = []model.Session{}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(ss)
}
