{{/* Chart name, at most 63 characters. */}}
{{- define "cdcrelay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-wide name prefix. */}}
{{- define "cdcrelay.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one relay's objects. Context: dict root, source. */}}
{{- define "cdcrelay.sourceFullname" -}}
{{- printf "%s-%s" (include "cdcrelay.fullname" .root) .source.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cdcrelay.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels shared by every object of the release. */}}
{{- define "cdcrelay.commonLabels" -}}
helm.sh/chart: {{ include "cdcrelay.chart" . }}
app.kubernetes.io/name: {{ include "cdcrelay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one relay. Context: dict root, source. */}}
{{- define "cdcrelay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cdcrelay.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: relay
cdcrelay.io/source: {{ .source.name }}
{{- end -}}

{{/* All labels of one relay's objects. Context: dict root, source. */}}
{{- define "cdcrelay.labels" -}}
{{ include "cdcrelay.commonLabels" .root }}
app.kubernetes.io/component: relay
cdcrelay.io/source: {{ .source.name }}
{{- end -}}

{{- define "cdcrelay.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The relay config of one source, as YAML. config.id defaults to the source
name; metrics.listen is forced to 0.0.0.0:<metrics.port> so that the probes
and Prometheus reach it. Context: dict root, source.
*/}}
{{- define "cdcrelay.config" -}}
{{- $cfg := deepCopy (default (dict) .source.config) -}}
{{- if not $cfg.id -}}
{{- $_ := set $cfg "id" (.source.name | replace "-" "_") -}}
{{- end -}}
{{- $_ := set $cfg "metrics" (dict "listen" (printf "0.0.0.0:%v" .root.Values.metrics.port)) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
Checks across sources that the schema cannot express: names and source ids
are unique. Two relays with one id would share a transactional id and fence
each other for ever.
*/}}
{{- define "cdcrelay.validate" -}}
{{- $names := dict -}}
{{- $ids := dict -}}
{{- range .Values.sources -}}
{{- if hasKey $names .name -}}
{{- fail (printf "sources: name %q is used twice" .name) -}}
{{- end -}}
{{- $_ := set $names .name true -}}
{{- $id := default (.name | replace "-" "_") (.config).id -}}
{{- if hasKey $ids $id -}}
{{- fail (printf "sources: id %q is used by two sources (%s and %s); each relay needs its own id, which names its Kafka transactional id" $id (get $ids $id) .name) -}}
{{- end -}}
{{- $_ := set $ids $id .name -}}
{{- end -}}
{{- end -}}
