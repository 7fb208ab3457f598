package app

import (
	"fmt"
	"io"

	"github.com/meshrr/meshrr/agent/config"
	"github.com/meshrr/meshrr/agent/internal/plan"
)

func runInit(cfgPath string, getenv func(string) string, stdout io.Writer) error {
	c, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	pod, err := readPod(getenv)
	if err != nil {
		return err
	}
	rid, err := plan.RouterID(c, pod.self)
	if err != nil {
		return err
	}
	d, err := daemonOf(c)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	file, written, err := d.bootstrap(c, rid)
	if err != nil {
		return err
	}
	if written {
		fmt.Fprintf(stdout, "wrote %s (router id %s)\n", file, rid)
	} else {
		fmt.Fprintf(stdout, "kept the existing %s\n", file)
	}
	return nil
}
