//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshrr/meshrr/tests/e2e/cluster"
)

// registryPort is where cluster.sh registry publishes the suite's registry
// on the host's loopback; the nodes reach it under the same name.
const registryPort = "5001"

// published is one make release, as its release.env says.
type published map[string]string

// publish runs make release's script into the suite's registry.
func publish(t *testing.T, version string) published {
	t.Helper()
	dir := filepath.Join(t.TempDir(), version)
	cmd := exec.Command(filepath.Join(repoRoot, "tests", "tools", "release.sh"))
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "VERSION="+version, "REGISTRY=localhost:"+registryPort+"/meshrr",
		"INSECURE_REGISTRY=1", "RELEASE_DIR="+dir, "BIRD_IMAGE="+birdImage, "BIRD3_IMAGE="+bird3Image)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "make release VERSION=%s:\n%s", version, out)
	took := time.Since(start)
	env, err := os.ReadFile(filepath.Join(dir, "release.env"))
	require.NoError(t, err)
	p := published{}
	sc := bufio.NewScanner(bytes.NewReader(env))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			p[k] = v
		}
	}
	for _, k := range []string{"AGENT_IMAGE", "BIRD_IMAGE", "BIRD3_IMAGE", "CHART", "CHART_DIGEST", "AGENT_BINARY_SHA256_amd64", "AGENT_BINARY_SHA256_arm64"} {
		require.NotEmpty(t, p[k], "release.env has no %s:\n%s", k, env)
	}
	// each SBOM names what its image holds (the agent's Go modules, BIRD's
	// Debian package), the chart's the images it deploys, by digest
	for sbom, holds := range map[string]string{"agent-" + version + "-amd64": "github.com/Juniper/go-netconf",
		"agent-" + version + "-arm64": "github.com/Juniper/go-netconf", "bird-" + version: "bird2", "bird3-" + version: "bird3", "chart-" + version: "meshrr-agent"} {
		b, err := os.ReadFile(filepath.Join(dir, "sbom", sbom+".cdx.json"))
		require.NoError(t, err, "make release wrote no SBOM %s", sbom)
		var bom struct {
			BOMFormat  string `json:"bomFormat"`
			Components []struct {
				Name string `json:"name"`
			} `json:"components"`
		}
		var names []string
		require.NoError(t, json.Unmarshal(b, &bom), sbom)
		assert.Equal(t, "CycloneDX", bom.BOMFormat, sbom)
		for _, c := range bom.Components {
			names = append(names, c.Name)
		}
		assert.Contains(t, names, holds, "the SBOM %s does not list it", sbom)
		if strings.HasPrefix(sbom, "chart-") {
			for _, ref := range []string{p["AGENT_IMAGE"], p["BIRD_IMAGE"], p["BIRD3_IMAGE"]} {
				_, digest, _ := strings.Cut(ref, "@")
				assert.Contains(t, string(b), strings.Replace(digest, ":", "%3A", 1), "the chart's SBOM does not name %s", ref)
			}
		}
	}
	logf(t, "release: make release VERSION=%s took %s: agent %s (%s / %s bytes amd64 / arm64), bird %s (%s bytes), bird3 %s (%s bytes), chart %s:%s@%s",
		version, took.Round(100*time.Millisecond), p["AGENT_IMAGE"], p["AGENT_SIZE_amd64"], p["AGENT_SIZE_arm64"],
		p["BIRD_IMAGE"], p["BIRD_SIZE"], p["BIRD3_IMAGE"], p["BIRD3_SIZE"], p["CHART"], version, p["CHART_DIGEST"])
	return p
}

// TestReleaseInstallsAndUpgradesFromARegistry is an operator's path on a
// cluster of their own: make release into an OCI registry (the CNCF
// distribution registry on the kind network; the nodes' containerd pulls
// from it), helm install of examples/2regions-hrr from oci:// (lothlorien
// on BIRD 3), every pod running the images the chart pins by digest, pulled
// from the registry;
// then a second version built from the same tree, and helm upgrade of the
// core to it while a mirkwood router samples lothlorien's routes, which
// cross the core: 0 samples may miss one.
func TestReleaseInstallsAndUpgradesFromARegistry(t *testing.T) {
	require.NoError(t, script("tests/kind/cluster.sh", "registry", registryPort))
	registry := clusterName + "-registry"
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", registry).Run() })

	v1 := publish(t, "0.1.0-e2e.1")
	again := publish(t, "0.1.0-e2e.1")
	for _, k := range []string{"AGENT_BINARY_SHA256_amd64", "AGENT_BINARY_SHA256_arm64", "AGENT_IMAGE", "BIRD_IMAGE", "BIRD3_IMAGE"} {
		assert.Equal(t, v1[k], again[k], "%s differs between two builds of the same commit and version", k)
	}
	logf(t, "release: built twice, the same agent binaries (amd64 %s, arm64 %s), agent image index and BIRD images", v1["AGENT_BINARY_SHA256_amd64"][:12], v1["AGENT_BINARY_SHA256_arm64"][:12])

	src := func(version string) chartSource {
		return chartSource{ref: v1["CHART"], args: []string{"--version", version, "--plain-http"}}
	}
	start := time.Now()
	h := installHierarchy(t, src("0.1.0-e2e.1"), netpolValues(), "lothlorien")
	logf(t, "release: core and both regions installed from %s and meshed in %s", v1["CHART"], time.Since(start).Round(time.Second))
	for _, ns := range []*k8s.KubectlOptions{h.coreNS, h.lothNS, h.mirkNS} {
		runsRelease(t, ns, v1)
	}
	logs, err := exec.Command("docker", "logs", registry).CombinedOutput()
	require.NoError(t, err)
	for _, repo := range []string{"agent", "bird", "bird3"} {
		assert.Contains(t, string(logs), "GET /v2/meshrr/"+repo+"/manifests/sha256:", "no node pulled the %s image from the registry", repo)
	}

	bp := readBoundary(t)
	startRouter(t, "rel-loth", routerConf(routerID(61), []string{h.loth[0].Status.PodIP}, bp.announce()))
	client := startRouter(t, "rel-mirk", routerConf(routerID(62), podIPs(h.mirk), nil))
	cluster.Wait(t, "the boundary policy at the mirkwood router", 2*time.Minute, time.Second, func(c *assert.CollectT) {
		bp.check(c, client, bp.Outside)
	})
	var crossing []string
	for _, e := range bp.Outside {
		if e.Present {
			crossing = append(crossing, e.Prefix)
		}
	}

	v2 := publish(t, "0.1.0-e2e.2")
	require.NotEqual(t, v1["AGENT_IMAGE"], v2["AGENT_IMAGE"])
	before := cluster.Pods(t, h.coreNS, coreSelector)
	watch := watchRoutes(client, crossing)
	start = time.Now()
	helm.Upgrade(t, src("0.1.0-e2e.2").options(h.coreNS, []string{example("2regions-hrr", "values-core.yaml")}, h.coreSet()), h.src.ref, "core")
	cluster.WaitReplaced(t, h.coreNS, coreSelector, podNames(before), 2, 4*time.Minute)
	h.waitUpstreams(t)
	rolled := time.Since(start)
	time.Sleep(3 * time.Second) // keep sampling after the last session came back
	samples, lost, longest, missing := watch.finish()
	runsRelease(t, h.coreNS, v2)
	logf(t, "release: helm upgrade of the core to 0.1.0-e2e.2 rolled both sides and the regions re-homed in %s; the mirkwood router kept lothlorien's %d crossing prefixes in %d samples, %d prefix-samples missing, longest gap %s (goal 0)",
		rolled.Round(100*time.Millisecond), len(crossing), samples, lost, longest)
	assert.Empty(t, missing)
	assert.Zero(t, lost, "the mirkwood router lost a route while the core upgraded")
}

// runsRelease: every container of the namespace's meshrr pods runs one of
// the release's images, by the digest the chart pins, and the runtime
// reports it pulled that digest.
func runsRelease(t *testing.T, opts *k8s.KubectlOptions, p published) {
	t.Helper()
	for _, pod := range cluster.Pods(t, opts, "app.kubernetes.io/name=meshrr") {
		statuses := map[string]corev1.ContainerStatus{}
		for _, s := range append(append([]corev1.ContainerStatus{}, pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
			statuses[s.Name] = s
		}
		for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
			want := p["AGENT_IMAGE"]
			switch {
			case strings.Contains(c.Image, "/bird:"):
				want = p["BIRD_IMAGE"]
			case strings.Contains(c.Image, "/bird3:"):
				want = p["BIRD3_IMAGE"]
			}
			assert.Equal(t, want, c.Image, "%s/%s", pod.Name, c.Name)
			ref, digest, _ := strings.Cut(want, "@")
			repo := ref[:strings.LastIndex(ref, ":")]
			assert.Equal(t, repo+"@"+digest, statuses[c.Name].ImageID, "%s/%s: the image the runtime pulled", pod.Name, c.Name)
		}
	}
}

func podIPs(ps []corev1.Pod) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Status.PodIP)
	}
	return out
}
