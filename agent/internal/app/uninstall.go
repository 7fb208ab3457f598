package app

import (
	"context"
	"fmt"
	"io"

	"k8s.io/client-go/kubernetes"

	"github.com/meshrr/meshrr/agent/internal/uninstall"
)

// runUninstall stops the release's pods before Helm deletes anything.
func runUninstall(ctx context.Context, o uninstall.Options, kubeconfig string, stdout io.Writer) error {
	if err := o.Validate(); err != nil {
		return err
	}
	rc, err := restConfig(kubeconfig)
	if err != nil {
		return err
	}
	if o.Client, err = kubernetes.NewForConfig(rc); err != nil {
		return err
	}
	rep, err := uninstall.Run(ctx, o)
	if err != nil {
		return fmt.Errorf("uninstall: %w", err)
	}
	fmt.Fprintln(stdout, rep)
	return nil
}
