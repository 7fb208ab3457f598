{{/*
What only the chart knows (merged defaults, references between the groups
of one release, names that become object names, one address per side, the
cRPD image and licence Secret). Everything the agent's own validation
refuses is left to it: the values-check hook runs it before Helm changes
anything (docs/architecture.md). Every message names the field and says
what to do.
*/}}
{{- define "meshrr.validate" -}}
{{- $root := . -}}
{{- if not .Values.groups -}}
{{- fail "groups: define at least one group, e.g. --set groups.core.identity.asn=65000" -}}
{{- end -}}
{{- $addrs := dict -}}
{{- range $name := keys .Values.groups | sortAlpha -}}
{{- $g := include "meshrr.group" (dict "root" $root "name" $name) | fromYaml -}}
{{- $f := printf "groups.%s" $name -}}
{{- if not $g.identity.asn -}}
{{- fail (printf "%s.identity.asn: required (1-4294967295); set it for the group or in defaults.identity.asn" $f) -}}
{{- end -}}
{{- $gid := printf "%s.%s" $root.Release.Name $name -}}
{{- if gt (len $gid) 63 -}}
{{- fail (printf "%s: the group id %q (release.group) is longer than 63 characters; use a shorter release or group name" $f $gid) -}}
{{- end -}}
{{- $u := $g.upstream | default dict -}}
{{- if $u.group -}}
{{- $sameRelease := or (not $u.release) (eq $u.release $root.Release.Name) -}}
{{- $sameNS := or (not $u.namespace) (eq $u.namespace $root.Release.Namespace) -}}
{{- if and $sameRelease $sameNS -}}
{{- if eq $u.group $name -}}
{{- fail (printf "%s.upstream.group: %q is this group itself; an upstream is another group" $f $u.group) -}}
{{- end -}}
{{- if not (hasKey $root.Values.groups $u.group) -}}
{{- fail (printf "%s.upstream.group: no group %q in this release (groups: %s); set upstream.release and upstream.namespace to peer with another release" $f $u.group (keys $root.Values.groups | sortAlpha | join ", ")) -}}
{{- end -}}
{{- end -}}
{{- else if $u -}}
{{- fail (printf "%s.upstream.group: required when upstream is set (the upstream group's name)" $f) -}}
{{- end -}}
{{- if eq $g.backend.type "crpd" -}}
{{- $c := $g.backend.crpd | default dict -}}
{{- $lic := $c.licenseSecret | default dict -}}
{{- if not $lic.name -}}
{{- fail (printf "%s.backend.crpd.licenseSecret.name: required for cRPD: the Secret holding the cRPD licence key" $f) -}}
{{- end -}}
{{- if not $c.image -}}
{{- fail (printf "%s.backend.crpd.image: required for cRPD: your cRPD image (not distributed with meshrr)" $f) -}}
{{- end -}}
{{- end -}}
{{- if and (eq $g.kind "DaemonSet") (hasKey (get $root.Values.groups $name | default dict) "replicas") -}}
{{- fail (printf "%s.replicas: a DaemonSet runs one pod per selected node; remove replicas or use kind Deployment" $f) -}}
{{- end -}}
{{- range $side := keys ($g.sides | default dict) | sortAlpha -}}
{{- $s := index $g.sides $side | default dict -}}
{{- if $s.loadBalancerIP -}}
{{- $field := printf "%s.sides.%s.loadBalancerIP" $f $side -}}
{{- if hasKey $addrs $s.loadBalancerIP -}}
{{- fail (printf "%s: %s is already the address of %s; every side needs its own address" $field $s.loadBalancerIP (get $addrs $s.loadBalancerIP)) -}}
{{- end -}}
{{- $_ := set $addrs $s.loadBalancerIP $field -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
