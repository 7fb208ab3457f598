//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/helm"
	"github.com/gruntwork-io/terratest/modules/k8s"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/meshrr/meshrr/agent/synthtable"
	"github.com/meshrr/meshrr/tests/e2e/cluster"
)

// scaleRoutes is the table size of the kind scale suite: MESHRR_SCALE_ROUTES
// (make scale: a full table), 100,000 in make test.
func scaleRoutes(t *testing.T) int {
	v := envOr("MESHRR_SCALE_ROUTES", "100000")
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "MESHRR_SCALE_ROUTES: a number of routes, not %q", v)
	return n
}

// rrPod is an RR pod of the scale suite and the namespace it lives in.
type rrPod struct {
	opts *k8s.KubectlOptions
	pod  corev1.Pod
	role string
}

// TestFullTableThroughTheHierarchy: the 2regions-hrr hierarchy (one RR
// per region, the core's two sides) carries a generated Internet-shaped
// table (agent/synthtable) from a BIRD feeder homed on the lothlorien RR
// to a BIRD receiver homed on the mirkwood RR. Measured in the same run:
// the direct feeder -> receiver transfer (the physical baseline) and the
// transfer through region RR -> core RR -> region RR; each RR pod's BIRD
// cgroup memory and its agent's resident memory. Asserted: every route
// arrives with its AS path, no session flaps and no probe fails while the
// table loads, deleting a core RR while the table is loaded loses no route
// at the receiver, and a withdrawal clears the receiver and the core.
func TestFullTableThroughTheHierarchy(t *testing.T) {
	n := scaleRoutes(t)
	routes := synthtable.Generate(synthtable.Spec{Seed: 1, IPv4: n, CommunityShare: 0.3})
	coreNS := namespace(t, "e2e-scale-core")
	aNS := namespace(t, "e2e-scale-loth")
	bNS := namespace(t, "e2e-scale-mirk")
	helm.Install(t, helmOptions(coreNS, []string{example("2regions-hrr", "values-core.yaml")}, map[string]string{
		"groups.core.downstream.namespaces": fmt.Sprintf("{%s,%s}", aNS.Namespace, bNS.Namespace),
	}), chart(), "core")
	region := func(opts *k8s.KubectlOptions, name string) {
		set := map[string]string{
			"defaults.replicas":                             "1",
			"defaults.upstream.namespace":                   coreNS.Namespace,
			"defaults.upstream.siblingNamespaces":           fmt.Sprintf("{%s,%s}", aNS.Namespace, bNS.Namespace),
			"groups." + name + ".clients.routers.ranges[0]": routerRange(),
		}
		helm.Install(t, helmOptions(opts, regionValues(t, name), set), chart(), name)
	}
	region(aNS, "lothlorien")
	region(bNS, "mirkwood")
	sel := "app.kubernetes.io/name=meshrr"
	cores := cluster.WaitReady(t, coreNS, sel, 2, 3*time.Minute)
	rrA := cluster.WaitReady(t, aNS, sel, 1, 3*time.Minute)[0]
	rrB := cluster.WaitReady(t, bNS, sel, 1, 3*time.Minute)[0]
	rrs := []rrPod{{aNS, rrA, "region lothlorien"}, {coreNS, cores[0], "core side " + cores[0].Labels["meshrr.io/side"]}, {coreNS, cores[1], "core side " + cores[1].Labels["meshrr.io/side"]}, {bNS, rrB, "region mirkwood"}}

	receiver := startBird(t, "receiver", routerID(41), t.TempDir())
	receiver.configure(t, "rr.conf", fmt.Sprintf(`
protocol bgp from_rr {
  neighbor %s as 65000; local as 65000;
  connect delay time 1; connect retry time 2;
  ipv4 { import all; export none; };
}
`, rrB.Status.PodIP))

	feedDir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(feedDir, "conf.d"), 0o755))
	f, err := os.Create(filepath.Join(feedDir, "conf.d", "feed.conf"))
	require.NoError(t, err)
	require.NoError(t, synthtable.WriteBIRD(f, routes))
	fmt.Fprintf(f, `
protocol bgp to_rr {
  neighbor %s as 65000; local as 65000; disabled yes; connect delay time 1;
  ipv4 { import none; export all; };
}
protocol bgp to_receiver {
  neighbor %s as 65000; local as 65000; disabled yes; connect delay time 1;
  ipv4 { import none; export all; };
}
`, rrA.Status.PodIP, receiver.Addr)
	require.NoError(t, f.Close())
	loadStart := time.Now()
	feeder := startBird(t, "feeder", routerID(42), feedDir)
	cluster.Wait(t, "the receiver holds the whole table", 15*time.Minute, 200*time.Millisecond, func(c *assert.CollectT) {
		got, err := feeder.routeCount("")
		assert.NoError(c, err)
		assert.Equal(c, n, got)
	})
	logf(t, "feeder: %d IPv4 routes loaded %s after its container started", n, time.Since(loadStart).Round(100*time.Millisecond))
	receiver.configure(t, "feeder.conf", fmt.Sprintf(`
protocol bgp from_feeder {
  neighbor %s as 65000; local as 65000; passive yes;
  ipv4 { import all; export none; };
}
`, feeder.Addr))

	// every session of the path up before anything is announced
	cluster.Wait(t, "every session of the path Established", 2*time.Minute, time.Second, func(c *assert.CollectT) {
		for _, r := range []rrPod{rrs[0], rrs[3]} {
			ss, err := cluster.Sessions(t, r.opts, r.pod.Name)
			if assert.NoError(c, err) {
				assert.Len(c, cluster.Established(ss, "upstream"), 2, "%s: both core sides", r.role)
			}
		}
		line, err := receiver.protocolLine("from_rr")
		assert.NoError(c, err)
		assert.Contains(c, line, "Established", "receiver -> mirkwood RR")
	})
	memBefore := map[string]podMemory{}
	for _, r := range rrs {
		memBefore[r.pod.Name] = readPodMemory(t, r)
	}
	sessionsBefore := rrSessionSince(t, rrs)
	loadBegan := time.Now()

	direct := birdTransfer(t, feeder, "to_receiver", receiver, "from_feeder", n)
	logf(t, "direct feeder -> receiver: first route after %s, all %d after %s", direct.first, n, direct.all)
	_, err = feeder.birdc("disable", "to_receiver")
	require.NoError(t, err)

	hops := birdTransfer(t, feeder, "to_rr", receiver, "from_rr", n)
	logf(t, "feeder -> region RR -> core RR -> region RR -> receiver: first route after %s, all %d after %s; %.2fx the direct transfer (goal <= 1.5x)",
		hops.first, n, hops.all, hops.all.Seconds()/direct.all.Seconds())
	// the generated attributes arrive unchanged through three reflectors
	probe := routes[0]
	got, err := receiver.birdc("show", "route", probe.Prefix.String(), "all")
	require.NoError(t, err)
	var path []string
	for _, as := range probe.Path {
		path = append(path, strconv.FormatUint(uint64(as), 10))
	}
	assert.Contains(t, got, "BGP.as_path: "+strings.Join(path, " "), "the feeder's AS path, in order")
	for _, r := range rrs {
		after := readPodMemory(t, r)
		b := memBefore[r.pod.Name]
		logf(t, "%s (%s): BIRD cgroup memory %d MiB -> %d MiB (peak %d MiB) with the table, %d bytes per route; agent RSS %d MiB -> %d MiB",
			r.role, r.pod.Name, b.bird>>20, after.bird>>20, after.birdPeak>>20, (after.bird-b.bird)/int64(n), b.agent>>20, after.agent>>20)
	}
	// no session flapped and no probe failed while the table loaded
	sessionsAfter := rrSessionSince(t, rrs)
	for k, since := range sessionsBefore {
		// BIRD prints "since" from a monotonic clock: the same change can
		// read a millisecond apart; a flap moves it by seconds
		assert.WithinDuration(t, since, sessionsAfter[k], 500*time.Millisecond, "%s: established since, before and after the load (a flap or a loss changes it)", k)
	}
	for _, r := range rrs {
		p := k8s.GetPod(t, r.opts, r.pod.Name)
		for _, cs := range p.Status.ContainerStatuses {
			assert.Zero(t, cs.RestartCount, "%s: container %s restarted during the load", r.role, cs.Name)
		}
	}
	for _, opts := range []*k8s.KubectlOptions{coreNS, aNS, bNS} {
		assert.Empty(t, unhealthySince(t, opts, loadBegan), "%s: probe failures during the load", opts.Namespace)
	}

	t.Run("CoreRRDeletedWhileLoaded", func(t *testing.T) { coreRRDeletedWhileLoaded(t, coreNS, bNS, rrB, receiver, n) })

	withdraw := time.Now()
	_, err = feeder.birdc("disable", "to_rr")
	require.NoError(t, err)
	cluster.Wait(t, "the table withdrawn everywhere", 10*time.Minute, 500*time.Millisecond, func(c *assert.CollectT) {
		got, err := receiver.routeCount("from_rr")
		assert.NoError(c, err)
		assert.Zero(c, got, "receiver")
		for _, p := range cluster.Pods(t, coreNS, sel) {
			assert.Zero(c, podNetworks(t, coreNS, p.Name), "core %s", p.Name)
		}
	})
	logf(t, "withdrawn at the feeder: gone at both core RRs and the receiver after %s", time.Since(withdraw).Round(100*time.Millisecond))
}

// coreRRDeletedWhileLoaded deletes (gracefully, as a drain or an eviction
// would) the core RR of side a while the receiver holds the whole table
// through the other side too, samples the receiver's table throughout and
// waits until the replacement holds the table again.
func coreRRDeletedWhileLoaded(t *testing.T, coreNS, bNS *k8s.KubectlOptions, rrB corev1.Pod, receiver *BirdRouter, n int) {
	sel := "app.kubernetes.io/name=meshrr"
	var victim corev1.Pod
	for _, p := range cluster.Pods(t, coreNS, sel) {
		if p.Labels["meshrr.io/side"] == "a" {
			victim = p
		}
	}
	require.NotEmpty(t, victim.Name, "a core RR of side a")
	var (
		mu               sync.Mutex
		samples, minSeen = 0, n
		stop, done       = make(chan struct{}), make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			got, err := receiver.routeCount("from_rr")
			if err != nil {
				continue
			}
			mu.Lock()
			samples++
			minSeen = min(minSeen, got)
			mu.Unlock()
		}
	}()
	start := time.Now()
	k8s.RunKubectl(t, coreNS, "delete", "pod", victim.Name, "--wait=true")
	gone := time.Since(start)
	// reconverged: a new side-a RR holds the table and mirkwood's RR has
	// its two core sessions back, each with the whole table
	cluster.Wait(t, "reconverged: the side-a replacement and mirkwood's RR hold the table", 10*time.Minute, time.Second, func(c *assert.CollectT) {
		replacements := 0
		for _, p := range cluster.Pods(t, coreNS, sel) {
			if p.Name == victim.Name || p.Labels["meshrr.io/side"] != "a" {
				continue
			}
			replacements++
			assert.Equal(c, n, podNetworks(t, coreNS, p.Name), "replacement %s", p.Name)
		}
		assert.Equal(c, 1, replacements, "a replacement RR on side a")
		ss, err := cluster.Sessions(t, bNS, rrB.Name)
		if assert.NoError(c, err) {
			up := cluster.Established(ss, "upstream")
			assert.Len(c, up, 2, "mirkwood RR: both core sides again")
			for _, s := range up {
				assert.Equal(c, n, s.Imported, "mirkwood RR: routes from %s", s.Peer)
			}
		}
	})
	reconverged := time.Since(start)
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	logf(t, "core RR %s deleted with %d routes loaded: gone after %s, reconverged (replacement and both mirkwood upstreams hold the table) after %s; receiver sampled %d times, fewest routes seen %d (%d lost)",
		victim.Name, n, gone.Round(100*time.Millisecond), reconverged.Round(100*time.Millisecond), samples, minSeen, n-minSeen)
	require.Positive(t, samples)
	assert.Equal(t, n, minSeen, "routes lost at the receiver while a core RR was replaced")
}

type transferTimes struct{ first, all time.Duration }

// birdTransfer enables a feeder session and times the receiver's table
// filling from it.
func birdTransfer(t *testing.T, feeder *BirdRouter, session string, receiver *BirdRouter, from string, n int) transferTimes {
	t.Helper()
	start := time.Now()
	_, err := feeder.birdc("enable", session)
	require.NoError(t, err)
	var tt transferTimes
	cluster.Wait(t, "the receiver holds the whole table again", 15*time.Minute, 100*time.Millisecond, func(c *assert.CollectT) {
		got, err := receiver.routeCount(from)
		assert.NoError(c, err)
		if got > 0 && tt.first == 0 {
			tt.first = time.Since(start).Round(10 * time.Millisecond)
		}
		assert.Equal(c, n, got)
	})
	tt.all = time.Since(start).Round(10 * time.Millisecond)
	return tt
}

// podNetworks is the number of prefixes in an RR pod's master4 (-1 when
// unreadable).
func podNetworks(t *testing.T, opts *k8s.KubectlOptions, pod string) int {
	out, err := cluster.Birdc(t, opts, pod, "show", "route", "count")
	if err != nil {
		return -1
	}
	_, v, err := birdCount(out)
	if err != nil {
		return -1
	}
	return v
}

// podMemory: the BIRD container's cgroup memory (in use, peak, and of it
// anonymous and file-backed), BIRD's own count of what it holds (show
// memory: Total and each line, effective plus overhead) and the agent's RSS.
type podMemory struct {
	bird, birdPeak, birdAnon, birdFile, birdOwn, agent int64
	birdParts                                          map[string]int64
}

func readPodMemory(t *testing.T, r rrPod) podMemory {
	t.Helper()
	// one exec: the cgroup's usage and peak, its memory.stat (cgroup v2,
	// else v1 on hosts still booted with the legacy hierarchy), and BIRD's
	// own count, separated by lines of ---
	const script = `d=/sys/fs/cgroup
if [ -f $d/memory.current ]; then cat $d/memory.current $d/memory.peak; echo ---; cat $d/memory.stat
else cat $d/memory/memory.usage_in_bytes $d/memory/memory.max_usage_in_bytes; echo ---; cat $d/memory/memory.stat; fi
echo ---
birdc -s /run/bird/bird.ctl show memory`
	out, err := k8s.RunKubectlAndGetOutputE(t, r.opts, "exec", r.pod.Name, "-c", "bird", "--", "bash", "-ec", script)
	require.NoError(t, err, "%s: memory (cgroup and birdc show memory)", r.pod.Name)
	parts := strings.Split(out, "\n---\n")
	require.Len(t, parts, 3, "%s: cgroup usage, memory.stat and show memory: %q", r.pod.Name, out)
	f := strings.Fields(parts[0])
	require.Len(t, f, 2, "%s: cgroup memory in use and peak: %q", r.pod.Name, parts[0])
	var m podMemory
	m.bird, err = strconv.ParseInt(f[0], 10, 64)
	require.NoError(t, err)
	m.birdPeak, err = strconv.ParseInt(f[1], 10, 64)
	require.NoError(t, err)
	// anonymous and file-backed: anon and file in cgroup v2, rss and
	// cache in v1
	stat := parts[1]
	found := 0
	for _, l := range strings.Split(stat, "\n") {
		k, v, ok := strings.Cut(l, " ")
		if !ok || !slices.Contains([]string{"anon", "rss", "file", "cache"}, k) {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		require.NoError(t, err, "%s: memory.stat %q", r.pod.Name, l)
		if k == "anon" || k == "rss" {
			m.birdAnon = n
		} else {
			m.birdFile = n
		}
		found++
	}
	require.Equal(t, 2, found, "%s: memory.stat has anonymous and file-backed memory (anon and file, or rss and cache): %q", r.pod.Name, stat)
	own := parts[2]
	m.birdParts, err = birdMemory(own)
	require.NoError(t, err, "%s: birdc show memory", r.pod.Name)
	m.birdOwn = m.birdParts["Total"]
	m.agent = int64(cluster.Metric(t, r.opts, r.pod.Name, "process_resident_memory_bytes"))
	return m
}

// rrSessionSince maps every established session of the RR pods to the
// time it became established: a flap changes it.
func rrSessionSince(t *testing.T, rrs []rrPod) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	for _, r := range rrs {
		ss, err := cluster.Sessions(t, r.opts, r.pod.Name)
		require.NoError(t, err)
		for _, s := range ss {
			if s.Established {
				out[r.pod.Name+" "+s.Name] = s.Since
			}
		}
	}
	return out
}

// unhealthySince lists the probe failures (Unhealthy events) of a
// namespace seen since a time.
func unhealthySince(t *testing.T, opts *k8s.KubectlOptions, since time.Time) []string {
	t.Helper()
	out, err := k8s.RunKubectlAndGetOutputE(t, opts, "get", "events", "--field-selector", "reason=Unhealthy",
		"-o", `jsonpath={range .items[*]}{.lastTimestamp}{"\t"}{.involvedObject.name}{"\t"}{.message}{"\n"}{end}`)
	require.NoError(t, err)
	var bad []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.SplitN(l, "\t", 2)
		if len(f) < 2 {
			continue
		}
		ts, err := time.Parse(time.RFC3339, f[0])
		if err != nil || !ts.Before(since.Truncate(time.Second)) {
			bad = append(bad, l)
		}
	}
	return bad
}

// birdMemory reads BIRD's "show memory" (BIRD 2: "Routing tables:  19.2 kB
// 1360.0  B", effective then overhead; BIRD 2.0.8 and older print the
// effective size only): bytes by line ("Routing tables", "Total", ...).
func birdMemory(out string) (map[string]int64, error) {
	parts := map[string]int64{}
	for _, l := range strings.Split(out, "\n") {
		name, sizes, ok := strings.Cut(l, ":")
		f := strings.Fields(sizes)
		if !ok || len(f) < 2 || len(f)%2 != 0 {
			continue
		}
		var total float64
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", l, err)
			}
			unit := map[string]float64{"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[f[i+1]]
			if unit == 0 {
				return nil, fmt.Errorf("%q: unit %q", l, f[i+1])
			}
			total += v * unit
		}
		parts[strings.TrimSpace(name)] = int64(total)
	}
	if _, ok := parts["Total"]; !ok {
		return nil, fmt.Errorf("no Total line in %q", out)
	}
	return parts, nil
}
