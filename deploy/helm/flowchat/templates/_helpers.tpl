{{/* Labels on every object's metadata: the kustomize base's part-of, and Helm's own. */}}
{{- define "flowchat.labels" -}}
app.kubernetes.io/part-of: flowchat
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* A FlowChat image: <registry>flowchat/<name>:<tag>. */}}
{{- define "flowchat.image" -}}
{{ .root.Values.image.registry }}flowchat/{{ .name }}:{{ .root.Values.image.tag }}
{{- end -}}

{{/* The hardened container securityContext every FlowChat container runs with. */}}
{{- define "flowchat.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities: {drop: [ALL]}
{{- end -}}
