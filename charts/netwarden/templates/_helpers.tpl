{{/*
The chart's objects are those of config/ (files/config, files/crds: symlinks into the repository,
followed by helm package), parsed and laid over with the values. So config/ stays the one place
that says what is installed and why, and the chart adds only the knobs.
*/}}

{{/* The objects of one manifest file: {"items": [...]}, as JSON (include returns a string). */}}
{{- define "netwarden.fileObjects" -}}
{{- $items := list -}}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" (.ctx.Files.Get .file) -1 -}}
{{- $obj := fromYaml $doc -}}
{{- if hasKey $obj "Error" -}}{{- fail (printf "%s: %s" $.file $obj.Error) -}}{{- end -}}
{{- if $obj.kind -}}{{- $items = append $items $obj -}}{{- end -}}
{{- end -}}
{{- if not $items -}}{{- fail (printf "%s: no objects (is files/ a symlink into the repository?)" .file) -}}{{- end -}}
{{- toJson (dict "items" $items) -}}
{{- end -}}

{{/* The objects of every file matching a glob, in file name order. */}}
{{- define "netwarden.globObjects" -}}
{{- $items := list -}}
{{- $ctx := .ctx -}}
{{- $paths := list -}}
{{- range $path, $_ := $ctx.Files.Glob .glob -}}{{- $paths = append $paths $path -}}{{- end -}}
{{- range $path := sortAlpha $paths -}}
{{- $items = concat $items (include "netwarden.fileObjects" (dict "ctx" $ctx "file" $path) | fromJson).items -}}
{{- end -}}
{{- toJson (dict "items" $items) -}}
{{- end -}}

{{/* Labels Helm's tools expect, on every object (not on selectors: those cannot change). */}}
{{- define "netwarden.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* One object as a YAML document, with the chart's labels (and `extraLabels`) added. */}}
{{- define "netwarden.emit" -}}
{{- $obj := .obj -}}
{{- $meta := $obj.metadata -}}
{{- $labels := merge (dict) (.extraLabels | default dict) (include "netwarden.labels" .ctx | fromYaml) ($meta.labels | default dict) -}}
{{- $_ := set $meta "labels" $labels -}}
---
{{ toYaml $obj }}
{{ end -}}

{{/* Every object of .items, emitted. */}}
{{- define "netwarden.emitAll" -}}
{{- range $obj := .items -}}
{{ include "netwarden.emit" (dict "ctx" $.ctx "obj" $obj "extraLabels" $.extraLabels) }}
{{- end -}}
{{- end -}}

{{- define "netwarden.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/*
The values every pod spec takes the same way: image, pull policy and secrets, resources, scheduling,
pod annotations and extra arguments. .pod is the pod template, .v the component's values.
*/}}
{{- define "netwarden.podOverlay" -}}
{{- $tpl := .pod -}}
{{- $spec := $tpl.spec -}}
{{- $v := .v -}}
{{- $c := index $spec.containers 0 -}}
{{- $_ := set $c "image" (include "netwarden.image" .ctx) -}}
{{- with .ctx.Values.image.pullPolicy }}{{- $_ := set $c "imagePullPolicy" . -}}{{- end -}}
{{- with .ctx.Values.imagePullSecrets }}{{- $_ := set $spec "imagePullSecrets" . -}}{{- end -}}
{{- $_ := set $c "resources" $v.resources -}}
{{- with $v.extraArgs }}{{- $_ := set $c "args" (concat $c.args .) -}}{{- end -}}
{{- with $v.nodeSelector }}{{- $_ := set $spec "nodeSelector" . -}}{{- end -}}
{{- with $v.affinity }}{{- $_ := set $spec "affinity" . -}}{{- end -}}
{{- if $v.tolerations }}{{- $_ := set $spec "tolerations" $v.tolerations -}}{{- else }}{{- $_ := unset $spec "tolerations" -}}{{- end -}}
{{- with $v.podAnnotations }}
{{- $_ := set $tpl.metadata "annotations" (merge (dict) . ($tpl.metadata.annotations | default dict)) -}}
{{- end -}}
{{- end -}}

{{/* Bring-your-own certificates: what config/components/cert-manager adds to a pod spec. */}}
{{- define "netwarden.byoTls" -}}
{{- $spec := .pod.spec -}}
{{- $c := index $spec.containers 0 -}}
{{- $_ := set $c "args" (concat $c.args (list "--tls-cert-file=/etc/netwarden/tls/tls.crt" "--tls-key-file=/etc/netwarden/tls/tls.key" "--ca-file=/etc/netwarden/tls/ca.crt")) -}}
{{- $_ := set $c "volumeMounts" (append ($c.volumeMounts | default list) (dict "name" "tls" "mountPath" "/etc/netwarden/tls" "readOnly" true)) -}}
{{- $_ := set $spec "volumes" (append ($spec.volumes | default list) (dict "name" "tls" "secret" (dict "secretName" .secret))) -}}
{{- end -}}
