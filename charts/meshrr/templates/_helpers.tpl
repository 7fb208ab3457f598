{{/* Chart name. */}}
{{- define "meshrr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name prefix: the release name, plus "-meshrr" unless it contains the chart name. */}}
{{- define "meshrr.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "meshrr.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "meshrr.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Standard labels (never used in selectors: they change across upgrades). */}}
{{- define "meshrr.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "meshrr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* ServiceAccount name. */}}
{{- define "meshrr.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "meshrr.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
A group merged over defaults, as YAML (use with fromYaml).
Args: dict "root" $ "name" NAME.
*/}}
{{- define "meshrr.group" -}}
{{- $g := index .root.Values.groups .name | default dict -}}
{{- $m := mustMergeOverwrite (deepCopy .root.Values.defaults) (deepCopy $g) -}}
{{- toYaml $m -}}
{{- end -}}

{{/*
Every unit (a group, or a group's side) as a YAML list of
{group, side, name, groupID, replicas, values}. A unit owns one workload,
headless Service, PodDisruptionBudget and, for sides, LoadBalancer Service.
*/}}
{{- define "meshrr.units" -}}
{{- $root := . -}}
{{- $units := list -}}
{{- range $name := keys .Values.groups | sortAlpha -}}
{{- $g := include "meshrr.group" (dict "root" $root "name" $name) | fromYaml -}}
{{- $base := include "meshrr.groupBase" (dict "root" $root "name" $name) -}}
{{- $gid := printf "%s.%s" $root.Release.Name $name -}}
{{- if $g.sides -}}
{{- range $side := keys $g.sides | sortAlpha -}}
{{- $s := index $g.sides $side | default dict -}}
{{- $replicas := $g.replicas -}}
{{- if hasKey $s "replicas" -}}{{- $replicas = $s.replicas -}}{{- end -}}
{{- $units = append $units (dict "group" $name "side" $side "name" (printf "%s-%s" $base $side) "groupID" $gid "replicas" $replicas "sideValues" $s "values" $g) -}}
{{- end -}}
{{- else -}}
{{- $units = append $units (dict "group" $name "side" "" "name" $base "groupID" $gid "replicas" $g.replicas "sideValues" dict "values" $g) -}}
{{- end -}}
{{- end -}}
{{- toYaml $units -}}
{{- end -}}

{{/*
One unit per group (its first side's): the agent configuration is the
group's, the same for every side. Rendered into the group's ConfigMap and
into the values-check hook's.
*/}}
{{- define "meshrr.groupUnits" -}}
{{- $seen := dict -}}
{{- $out := list -}}
{{- range $unit := include "meshrr.units" . | fromYamlArray -}}
{{- if not (hasKey $seen $unit.group) -}}
{{- $_ := set $seen $unit.group true -}}
{{- $out = append $out $unit -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* Selector labels of a unit: never overlap between groups, sides or releases. Args: dict "root" $ "unit" UNIT. */}}
{{- define "meshrr.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meshrr.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
meshrr.io/group-name: {{ .unit.group }}
{{- if .unit.side }}
meshrr.io/side: {{ .unit.side }}
{{- end }}
{{- end -}}

{{/*
Upstream of a group resolved to {groupID, namespace, service}; empty when
none. service is the upstream group's headless Service name (the stem
before -<side>), the only name the agents trust for it: this release's
own name for its groups, else upstream.service or the name the chart gives
it in a release of that name without name overrides. Args: dict "root" $ "values" GROUP.
*/}}
{{- define "meshrr.upstream" -}}
{{- $u := .values.upstream | default dict -}}
{{- if $u.group -}}
{{- $rel := $u.release | default .root.Release.Name -}}
{{- $ns := $u.namespace | default .root.Release.Namespace -}}
groupID: {{ printf "%s.%s" $rel $u.group }}
namespace: {{ $ns }}
{{- if $u.service }}
service: {{ $u.service }}
{{- else if eq $rel .root.Release.Name }}
service: {{ include "meshrr.groupBase" (dict "root" .root "name" $u.group) }}
{{- else }}
{{- $full := ternary $rel (printf "%s-%s" $rel .root.Chart.Name) (contains .root.Chart.Name $rel) | trunc 40 | trimSuffix "-" }}
service: {{ printf "%s-%s" $full $u.group }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* Discovery labels of a unit's headless Service (read by the agents through EndpointSlices). */}}
{{- define "meshrr.discoveryLabels" -}}
meshrr.io/group: {{ .unit.groupID }}
{{- if .unit.side }}
meshrr.io/side: {{ .unit.side }}
{{- end }}
{{- $up := include "meshrr.upstream" (dict "root" .root "values" .unit.values) | fromYaml }}
{{- if $up.groupID }}
meshrr.io/upstream-group: {{ $up.groupID }}
meshrr.io/upstream-namespace: {{ $up.namespace }}
{{- end }}
{{- end -}}

{{/* "true" when a session group of the group has BFD (the chart then opens UDP 3784/4784 and gives BIRD NET_ADMIN), else "". Args: group values. */}}
{{- define "meshrr.bfd" -}}
{{- $on := or ((.mesh).bfd).enabled ((.upstream).bfd).enabled -}}
{{- range $c := (.clients | default dict) }}{{ $on = or $on ((($c | default dict).bfd).enabled) }}{{ end -}}
{{- if $on }}true{{ end -}}
{{- end -}}

{{/* The NetworkPolicy peers a unit has BGP (and BFD) sessions with: its
group's own members, its upstream group's, its downstream groups' RRs and
its client ranges. Args: dict "root" $ "unit" UNIT. Returns YAML list items. */}}
{{- define "meshrr.bgpPeers" -}}
{{- $root := .root }}{{ $unit := .unit -}}
# the group's own members (every side): the iBGP mesh
- podSelector:
    matchLabels:
      app.kubernetes.io/name: {{ include "meshrr.name" $root }}
      app.kubernetes.io/instance: {{ $root.Release.Name }}
      meshrr.io/group-name: {{ $unit.group }}
{{- with $unit.values.upstream }}
{{- if .group }}
# the upstream group's members, named by release, group and namespace
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .namespace | default $root.Release.Namespace }}
  podSelector:
    matchLabels:
      app.kubernetes.io/name: {{ include "meshrr.name" $root }}
      app.kubernetes.io/instance: {{ .release | default $root.Release.Name }}
      meshrr.io/group-name: {{ .group }}
{{- end }}
{{- end }}
{{- with ($unit.values.downstream | default dict).namespaces }}
# the RRs of the groups that name this group as their upstream, in the
# downstream namespaces (the agent admits only those its release Services
# list, each at its own address)
- namespaceSelector:
    matchExpressions:
      - key: kubernetes.io/metadata.name
        operator: In
        values: {{ toJson . }}
  podSelector:
    matchLabels:
      app.kubernetes.io/name: {{ include "meshrr.name" $root }}
      meshrr.io/upstream-group: {{ $unit.groupID }}
{{- end }}
{{- range $client := keys ($unit.values.clients | default dict) | sortAlpha }}
{{- range (index $unit.values.clients $client).ranges }}
- ipBlock: {cidr: {{ . | quote }}}
{{- end }}
{{- end }}
{{- end -}}

{{/* Namespaces whose EndpointSlices a group reads. Args: dict "root" $ "values" GROUP. Returns a YAML list. */}}
{{- define "meshrr.discoveryNamespaces" -}}
{{- $ns := list .root.Release.Namespace -}}
{{- $up := include "meshrr.upstream" (dict "root" .root "values" .values) | fromYaml -}}
{{- if $up.namespace -}}
{{- $ns = append $ns $up.namespace -}}
{{- range (.values.upstream.siblingNamespaces | default list) -}}{{- $ns = append $ns . -}}{{- end -}}
{{- end -}}
{{- range ((.values.downstream | default dict).namespaces | default list) -}}{{- $ns = append $ns . -}}{{- end -}}
{{- toYaml ($ns | uniq) -}}
{{- end -}}

{{/*
The agent configuration of a group: exactly the file the agent validates
(tests parse it with the agent's own validation). The group's values that
have the agent's own shape pass through as they are; the parts the chart
owns (daemon paths, the group's discovery names, the drain, the status
listener, the TCP-MD5 mount) come from the named helpers below.
Args: dict "root" $ "unit" UNIT.
*/}}
{{- define "meshrr.agentConfig" -}}
{{- $v := .unit.values -}}
{{- $cfg := dict "apiVersion" "meshrr.io/v1alpha1" "kind" "AgentConfig" -}}
{{- /* agent-shaped values, passed through when set */ -}}
{{- $_ := set $cfg "identity" (include "meshrr.setKeys" (dict "from" $v.identity "keys" (list "asn" "routerID" "clusterID")) | fromYaml) -}}
{{- range $k := list "policy" "families" "timers" "gracefulRestart" -}}
{{- with index $v $k }}{{ $_ := set $cfg $k . }}{{ end -}}
{{- end -}}
{{- with .root.Values.clusterNetworks }}{{ $_ := set $cfg "clusterNetworks" . }}{{ end -}}
{{- with ($v.downstream | default dict) }}{{ if .namespaces -}}
{{- $_ := set $cfg "downstream" (pick . "namespaces" "maxPrefixes" "maxPrefixAction") -}}
{{- end }}{{ end -}}
{{- with include "meshrr.agentConfig.clients" $v | fromYamlArray }}{{ $_ := set $cfg "clients" . }}{{ end -}}
{{- /* chart-owned parts */ -}}
{{- $_ = set $cfg "backend" (include "meshrr.agentConfig.backend" . | fromYaml) -}}
{{- $_ = set $cfg "mesh" (include "meshrr.agentConfig.mesh" . | fromYaml) -}}
{{- with include "meshrr.agentConfig.upstream" . | fromYaml }}{{ $_ := set $cfg "upstream" . }}{{ end -}}
{{- $_ = set $cfg "drain" (include "meshrr.agentConfig.drain" . | fromYaml) -}}
{{- if $v.tcpMD5Secret }}{{ $_ := set $cfg "passwordDir" "/etc/meshrr-bgp-passwords" }}{{ $_ := set $cfg "passwordSecret" $v.tcpMD5Secret }}{{ end -}}
{{- if and $v.tcpMD5Secret $v.tcpMD5Keys }}{{ $_ := set $cfg "passwordKeys" $v.tcpMD5Keys }}{{ end -}}
{{- $_ = set $cfg "status" (dict "listen" (printf ":%v" $v.metricsPort) "readyRequiresEstablished" $v.readyRequiresEstablished) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The keys of a dict that are set (not empty). Args: dict "from" DICT "keys" LIST. Returns YAML. */}}
{{- define "meshrr.setKeys" -}}
{{- $out := dict -}}
{{- range $k := .keys }}{{ with index ($.from | default dict) $k }}{{ $_ := set $out $k . }}{{ end }}{{ end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The client groups as the agent lists them: the values' map, sorted by name, each with its name. Args: group values. Returns a YAML list. */}}
{{- define "meshrr.agentConfig.clients" -}}
{{- $clients := list -}}
{{- range $name := keys (.clients | default dict) | sortAlpha -}}
{{- $clients = append $clients (merge (dict "name" $name) (index $.clients $name | default dict)) -}}
{{- end -}}
{{- toYaml $clients -}}
{{- end -}}

{{/* The daemon's part of the agent configuration: the paths the chart mounts, cRPD's licence, BIRD's memory limit and cost per route (the agent warns, MemoryLimitLow, when the routes held need more). Args: dict "root" $ "unit" UNIT. */}}
{{- define "meshrr.agentConfig.backend" -}}
{{- $v := .unit.values -}}
{{- $backend := dict "type" $v.backend.type -}}
{{- if eq $v.backend.type "crpd" -}}
{{- $k := dict "licenseFile" (printf "/etc/meshrr/license/%s" ($v.backend.crpd.licenseSecret.key | default "license")) -}}
{{- if $v.backend.crpd.extraConfig }}{{ $_ := set $k "extraConfigFile" "/etc/meshrr/crpd-extra.conf" }}{{ end -}}
{{- with $v.backend.crpd.licenseLimits }}{{ $_ := set $k "licenseLimits" (dict "bgpPeers" (.bgpPeers | int) "ribEntries" (.ribEntries | int)) }}{{ end -}}
{{- $_ := set $backend "crpd" $k -}}
{{- else -}}
{{- $b := dict "socket" (include "meshrr.path.birdSocket" .) "extraConfigFile" "/etc/meshrr/bird-extra.conf" -}}
{{- with (($v.resources.bird).limits).memory -}}
{{- $_ := set $b "memoryLimit" (ternary . (printf "%d" (. | int64)) (kindIs "string" .)) -}}
{{- end -}}
{{- if hasKey $v.backend.bird "bytesPerRoute" }}{{ $_ := set $b "bytesPerRoute" ($v.backend.bird.bytesPerRoute | int64) }}{{ end -}}
{{- $_ := set $b "version" (include "meshrr.birdLine" $v | int) -}}
{{- with $v.backend.bird.threads }}{{ $_ := set $b "threads" (. | int) }}{{ end -}}
{{- $_ := set $backend "bird" $b -}}
{{- end -}}
{{- toYaml $backend -}}
{{- end -}}

{{/* The group's own discovery names (the release's group id and headless Service stem) and its BFD. Args: dict "root" $ "unit" UNIT. */}}
{{- define "meshrr.agentConfig.mesh" -}}
{{- $mesh := dict "group" .unit.groupID "service" (include "meshrr.groupBase" (dict "root" .root "name" .unit.group)) -}}
{{- with (.unit.values.mesh).bfd }}{{ $_ := set $mesh "bfd" . }}{{ end -}}
{{- toYaml $mesh -}}
{{- end -}}

{{/* The upstream group by the names the agents trust (meshrr.upstream) with the group's upstream settings passed through; empty without an upstream. Args: dict "root" $ "unit" UNIT. */}}
{{- define "meshrr.agentConfig.upstream" -}}
{{- $v := .unit.values -}}
{{- $up := include "meshrr.upstream" (dict "root" .root "values" $v) | fromYaml -}}
{{- if $up.groupID -}}
{{- $u := dict "group" $up.groupID "namespace" $up.namespace "service" $up.service -}}
{{- range $k := list "maxPeers" "gracePeriod" "holdDown" "epsilon" "siblingNamespaces" "bfd" -}}
{{- if hasKey $v.upstream $k }}{{ $_ := set $u $k (index $v.upstream $k) }}{{ end -}}
{{- end -}}
{{- toYaml $u -}}
{{- end -}}
{{- end -}}

{{/* The drain: the done file the daemon's preStop waits for, the times in seconds, the group's drain lock, the sides to wait for, and no wait for peers in a group of one pod. Args: dict "root" $ "unit" UNIT. */}}
{{- define "meshrr.agentConfig.drain" -}}
{{- $v := .unit.values -}}
{{- $drain := dict "doneFile" (include "meshrr.path.drainDone" .) "time" (printf "%ds" (int $v.drain.timeSeconds)) "waitTimeout" (printf "%ds" (int $v.drain.waitTimeoutSeconds)) "lock" (printf "%s-drain" (include "meshrr.groupBase" (dict "root" .root "name" .unit.group))) -}}
{{- $total := 0 -}}
{{- if $v.sides -}}
{{- $_ := set $drain "sides" (keys $v.sides | sortAlpha) -}}
{{- range $side := keys $v.sides -}}{{- $s := index $v.sides $side | default dict -}}{{- $total = add $total (ternary $s.replicas $v.replicas (hasKey $s "replicas")) -}}{{- end -}}
{{- else -}}
{{- $total = $v.replicas -}}
{{- end -}}
{{- if and (ne $v.kind "DaemonSet") (le (int $total) 1) }}{{ $_ := set $drain "waitForPeers" false }}{{ end -}}
{{- toYaml $drain -}}
{{- end -}}

{{/* Image reference: repository:tag, and @digest when the values pin one
(the runtime then pulls by digest; the tag stays for the reader). Args: dict
"root" $ "image" IMAGE. */}}
{{- define "meshrr.image" -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .root.Chart.AppVersion) -}}
{{- with .image.digest }}@{{ . }}{{ end -}}
{{- end -}}

{{/* Name stem of a group's objects. Args: dict "root" $ "name" GROUP. */}}
{{- define "meshrr.groupBase" -}}
{{- printf "%s-%s" (include "meshrr.fullname" .root) .name -}}
{{- end -}}

{{/*
Paths the chart, the images and the agent must agree on, defined here once:
rendered into the agent configuration (backend.bird.socket, drain.doneFile)
and used by the BIRD container (its BIRD_SOCKET and liveness probe) and the
daemon's preStop. The agent's own defaults (agent/config/defaults.go) are the
same values for an agent run without the chart.
*/}}
{{- define "meshrr.path.birdSocket" -}}/run/bird/bird.ctl{{- end -}}
{{- define "meshrr.path.drainDone" -}}/run/meshrr/drain-done{{- end -}}

{{/* Seconds a stopping pod needs: the drain wait and time, and 15 s for the daemons to stop. */}}
{{- define "meshrr.terminationGrace" -}}
{{- max (int .terminationGracePeriodSeconds) (add (int .drain.timeSeconds) (int .drain.waitTimeoutSeconds) 15) -}}
{{- end -}}

{{/* The group's tolerations: its own, and for a Deployment or StatefulSet
the short node-loss tolerations (nodeLossTolerationSeconds) for the keys
its own do not name. Args: group values. */}}
{{- define "meshrr.tolerations" -}}
{{- $out := list }}
{{- range .tolerations }}{{ $out = append $out . }}{{ end }}
{{- if and (ne .kind "DaemonSet") (not (kindIs "invalid" .nodeLossTolerationSeconds)) }}
{{- range $key := list "node.kubernetes.io/not-ready" "node.kubernetes.io/unreachable" }}
{{- $named := false }}
{{- range $.tolerations }}{{ if eq (.key | default "") $key }}{{ $named = true }}{{ end }}{{ end }}
{{- if not $named }}
{{- $out = append $out (dict "key" $key "operator" "Exists" "effect" "NoExecute" "tolerationSeconds" (int $.nodeLossTolerationSeconds)) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end -}}

{{/* The daemon container's preStop: stay up until the agent's drain time is over (its drain.doneFile), bounded. Args: group values. */}}
{{- define "meshrr.daemonPreStop" -}}
i=0; while [ ! -e {{ include "meshrr.path.drainDone" . }} ] && [ $i -lt {{ add (int .drain.timeSeconds) (int .drain.waitTimeoutSeconds) 5 }} ]; do sleep 1; i=$((i+1)); done
{{- end -}}

{{/* Downward API environment of the agent. */}}
{{- define "meshrr.podEnv" -}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: POD_UID
  valueFrom: {fieldRef: {fieldPath: metadata.uid}}
- name: POD_IPS
  valueFrom: {fieldRef: {fieldPath: status.podIPs}}
- name: NODE_NAME
  valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
- name: HOST_IP
  valueFrom: {fieldRef: {fieldPath: status.hostIP}}
- name: MESHRR_SIDE
  valueFrom: {fieldRef: {fieldPath: "metadata.labels['meshrr.io/side']"}}
{{- if eq (include "meshrr.birdLine" .values) "3" }}
# BIRD 3's threads when backend.bird.threads is 0: the BIRD container's CPU
# limit in whole CPUs, rounded up (the node's CPUs when it has no limit)
- name: MESHRR_BIRD_CPUS
  valueFrom: {resourceFieldRef: {containerName: bird, resource: limits.cpu, divisor: "1"}}
{{- end }}
{{- end -}}

{{/* The BIRD release line of a group ("2" or "3"; "" for cRPD). Args: the group's values. */}}
{{- define "meshrr.birdLine" -}}
{{- if ne .backend.type "crpd" }}{{ (.backend.bird).version | default 2 | int }}{{ end -}}
{{- end -}}

{{/* The images entry of a BIRD release line, as YAML (fromYaml): images.bird, or images.bird3 for line "3". Args: dict "root" $ "line" LINE. */}}
{{- define "meshrr.birdImageOf" -}}
{{- toYaml (ternary .root.Values.images.bird3 .root.Values.images.bird (eq .line "3")) -}}
{{- end -}}

{{/*
The pod's security context. BIRD pods meet the Pod Security Standard
"restricted": every container runs non-root, and BIRD binds TCP 179
without a capability because the pod's network namespace makes ports
from 179 up unprivileged (a "safe" sysctl every kubelet allows; it affects
only this pod). BFD is the exception (see meshrr.birdSecurityContext);
cRPD pods are privileged (docs/security.md). Args: group values.
*/}}
{{- define "meshrr.podSecurityContext" -}}
seccompProfile: {type: RuntimeDefault}
{{- if ne .backend.type "crpd" }}
sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "179"}]
{{- if not (include "meshrr.bfd" .) }}
runAsNonRoot: true
{{- end }}
{{- end }}
{{- end -}}

{{/*
The BIRD container: the agent's user and group (BIRD's control socket,
mode 0660, is then the agent's), no capability, read-only root. With BFD
it runs as root with NET_ADMIN: BIRD gives its BFD sockets priority 7
(SO_PRIORITY), which needs NET_ADMIN, and Kubernetes gives a non-root
process no capability (no ambient capabilities); as root it hands its
control socket to the agent's group (-g 65532: SETGID, CHOWN). Args: group values.
*/}}
{{- define "meshrr.birdSecurityContext" -}}
{{- if include "meshrr.bfd" . -}}
runAsNonRoot: false
runAsUser: 0
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities: {drop: [ALL], add: [SETGID, CHOWN, NET_ADMIN]}
{{- else -}}
{{ include "meshrr.agentSecurityContext" . }}
{{- end -}}
{{- end -}}

{{/* The agent runs unprivileged: non-root, read-only root, no capabilities. */}}
{{- define "meshrr.agentSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities: {drop: [ALL]}
{{- end -}}

{{/*
The checksum of the settings every BGP session of a unit is opened with
(config.KeepSessionSettings): identity, families, timers, graceful restart,
the client settings BIRD resets sessions for
(config.SessionResettingClientSettings), and the BIRD line and threads its
daemon starts with. It is a pod-template annotation, so
a change rolls the pods one at a time, each draining; running agents keep
their values, and everything else hot-reloads in place.
*/}}
{{- define "meshrr.sessionSettingsChecksum" -}}
{{- $agentCfg := include "meshrr.agentConfig" . | fromYaml -}}
{{- $settings := pick $agentCfg "identity" "families" "timers" "gracefulRestart" -}}
{{- range $c := ($agentCfg.clients | default list) }}{{ with pick $c "addPaths" "multihop" "ttlSecurity" "type" }}{{ $_ := set $settings (printf "clients/%s" $c.name) . }}{{ end }}{{ end -}}
{{- with pick ((($agentCfg.backend | default dict).bird) | default dict) "version" "threads" }}{{ $_ := set $settings "bird" . }}{{ end -}}
{{- $settings | toYaml | sha256sum | trunc 16 -}}
{{- end -}}
