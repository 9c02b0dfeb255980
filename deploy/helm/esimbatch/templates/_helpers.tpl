{{/*
Names, labels, the image and the security contexts every template shares.
The restricted Pod Security settings are fixed here, not values: no values
file can weaken them (README "Deploying").
*/}}

{{/* The chart name, as a label value. */}}
{{- define "esimbatch.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's object name: the release name, with the chart name unless it has it already. */}}
{{- define "esimbatch.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The labels of every object and pod; the caller adds app.kubernetes.io/component. */}}
{{- define "esimbatch.labels" -}}
app.kubernetes.io/name: {{ include "esimbatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
{{- end }}

{{/* The pinned image: image.tag, or the chart's appVersion; never latest. */}}
{{- define "esimbatch.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString }}
{{- if or (eq $tag "") (eq $tag "latest") }}
{{- fail "image.tag: pin a release tag (empty means the chart's appVersion), not latest" }}
{{- end }}
{{- if not .Values.image.repository }}
{{- fail "image.repository: required" }}
{{- end }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{/* Pod Security "restricted", as the image's distroless nonroot user. */}}
{{- define "esimbatch.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "esimbatch.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}
