package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/meshrr/meshrr/agent/config"
)

// runEnable asks the running agent to admit again a client kept out for
// exceeding its prefix limit.
func runEnable(ctx context.Context, cfgPath string, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("enable: give the address of one client kept out (meshrr-agent enable ADDRESS)")
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	msg, err := controlPost(ctx, cfg, 30*time.Second, "/enable?peer="+url.QueryEscape(args[0]))
	if err != nil {
		return fmt.Errorf("enable: %w", err)
	}
	fmt.Fprintln(stdout, msg)
	return nil
}
