//go:build e2e && crpd

package e2e

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/require"

	"github.com/meshrr/meshrr/tests/e2e/cluster"
)

// TestMeshWithRealCRPD runs the mesh suite's first part with backend crpd.
// It needs a cRPD image (CRPD_IMAGE: an image name or a `docker save`
// archive) and a licence (CRPD_LICENSE: a file). Neither can exist on these
// machines, so the suite is built only with the crpd tag (`make e2e-crpd`,
// README "Running with cRPD") and fails when either is missing.
func TestMeshWithRealCRPD(t *testing.T) {
	image, license := os.Getenv("CRPD_IMAGE"), os.Getenv("CRPD_LICENSE")
	if image == "" || license == "" {
		t.Fatal("real-cRPD suite: set CRPD_IMAGE (image or archive) and CRPD_LICENSE (licence file)")
	}
	if strings.HasSuffix(image, ".tar") || strings.HasSuffix(image, ".tar.gz") {
		out, err := exec.Command("docker", "load", "-i", image).CombinedOutput()
		require.NoError(t, err, "%s", out)
		image = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "Loaded image:"))
	}
	require.NoError(t, script("tests/kind/cluster.sh", "load", image))
	opts := namespaceAt(t, "e2e-crpd", "privileged") // cRPD runs privileged (docs/security.md)
	k8s.RunKubectl(t, opts, "create", "secret", "generic", "crpd-license", "--from-file=license="+license)
	helm.Install(t, helmOptions(opts, []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{
		"groups.core.sides":                           "null",
		"groups.core.nodeSelector":                    "null",
		"groups.core.replicas":                        "3",
		"groups.core.backend.type":                    "crpd",
		"groups.core.backend.crpd.image":              image,
		"groups.core.backend.crpd.licenseSecret.name": "crpd-license",
	}), chart(), "core")
	cluster.WaitReady(t, opts, coreSelector, 3, 5*time.Minute)
	meshSettled(t, opts, 3, 3*time.Minute)
}
