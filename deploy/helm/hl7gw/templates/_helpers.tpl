{{/* Names and labels. */}}
{{- define "hl7gw.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hl7gw.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "hl7gw.labels" -}}
{{ include "hl7gw.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "hl7gw.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "hl7gw.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "hl7gw.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Mistakes in values, refused at render time with what to change. */}}
{{- define "hl7gw.validate" -}}
{{- range .Values.listeners -}}
{{- if and .tls (not $.Values.tls.mllp.secretName) -}}
{{- fail (printf "listeners: %s has tls: true; set tls.mllp.secretName (a kubernetes.io/tls Secret)" .name) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.tls.kafka.enabled (not .Values.tls.kafka.secretName) -}}
{{- fail "tls.kafka.enabled: set tls.kafka.secretName (a Secret with ca.crt)" -}}
{{- end -}}
{{- if and .Values.kafkaSasl.enabled (not .Values.kafkaSasl.passwordSecret.name) -}}
{{- fail "kafkaSasl.enabled: set kafkaSasl.passwordSecret.name (the Secret holding the password)" -}}
{{- end -}}
{{- if and .Values.gateway.persistence.existingClaim (gt (int .Values.gateway.replicas) 1) -}}
{{- fail "gateway.persistence.existingClaim serves one replica: one spool has one writer" -}}
{{- end -}}
{{- if and .Values.bridge.enabled (not .Values.config.bridge) -}}
{{- fail "bridge.enabled: config.bridge (target_url, ...) is missing" -}}
{{- end -}}
{{- end -}}

{{/*
gateway.yaml: values.config with what belongs to the pods filled in (bind addresses,
ports, the spool on its volume, the mounted profiles and secrets).
*/}}
{{- define "hl7gw.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $listeners := list -}}
{{- range .Values.listeners -}}
{{- $l := omit . "tls" -}}
{{- $_ := set $l "host" "0.0.0.0" -}}
{{- if .tls -}}
{{- $tls := dict "certfile" "/etc/hl7gw-tls/mllp/tls.crt" "keyfile" "/etc/hl7gw-tls/mllp/tls.key" -}}
{{- if $.Values.tls.mllp.requireClientCert -}}
{{- $_ := set $tls "cafile" "/etc/hl7gw-tls/mllp/ca.crt" -}}
{{- $_ := set $tls "require_client_cert" true -}}
{{- end -}}
{{- $_ := set $l "tls" $tls -}}
{{- end -}}
{{- $listeners = append $listeners $l -}}
{{- end -}}
{{- $_ := set $cfg "listeners" $listeners -}}
{{- $_ := set $cfg "http" (dict "host" "0.0.0.0" "port" .Values.http.port) -}}
{{- $_ := set $cfg "spool" (merge (dict "path" "/var/lib/hl7gw/spool.db") (default (dict) $cfg.spool)) -}}
{{- $_ := set $cfg "profiles" (merge (dict "dir" "/etc/hl7gw-profiles") (default (dict) $cfg.profiles)) -}}
{{- $_ := set $cfg "console" (merge (dict "audit_path" "/var/lib/hl7gw/audit.jsonl") (default (dict) $cfg.console)) -}}
{{- $kafka := default (dict) $cfg.kafka -}}
{{- if .Values.kafkaSasl.enabled -}}
{{- $_ := set $kafka "security_protocol" (ternary "SASL_SSL" "SASL_PLAINTEXT" .Values.tls.kafka.enabled) -}}
{{- $_ := set $kafka "sasl_mechanism" .Values.kafkaSasl.mechanism -}}
{{- $_ := set $kafka "sasl_username" .Values.kafkaSasl.username -}}
{{- $_ := set $kafka "sasl_password" "${file:/etc/hl7gw-kafka-sasl/password}" -}}
{{- else if .Values.tls.kafka.enabled -}}
{{- $_ := set $kafka "security_protocol" "SSL" -}}
{{- end -}}
{{- if .Values.tls.kafka.enabled -}}
{{- $_ := set $kafka "ssl_cafile" "/etc/hl7gw-tls/kafka/ca.crt" -}}
{{- if .Values.tls.kafka.clientCert -}}
{{- $_ := set $kafka "ssl_certfile" "/etc/hl7gw-tls/kafka/tls.crt" -}}
{{- $_ := set $kafka "ssl_keyfile" "/etc/hl7gw-tls/kafka/tls.key" -}}
{{- end -}}
{{- end -}}
{{- $_ := set $cfg "kafka" $kafka -}}
{{- if $cfg.bridge -}}
{{- $_ := set $cfg.bridge "http" (dict "enabled" true "host" "0.0.0.0" "port" .Values.bridge.httpPort) -}}
{{- end -}}
{{- if .Values.mapper.enabled -}}
{{- $so := default (dict) $cfg.scale_out -}}
{{- $_ := set $so "http" (dict "host" "0.0.0.0" "port" .Values.mapper.httpPort) -}}
{{- $_ := set $cfg "scale_out" $so -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The restricted Pod Security Standard, for every pod and container. */}}
{{- define "hl7gw.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "hl7gw.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Annotations of every workload: roll the pods when the config changes; checkov's
     exceptions, each with its reason. */}}
{{- define "hl7gw.podAnnotations" -}}
checksum/config: {{ include "hl7gw.config" . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "hl7gw.checkovSkips" -}}
checkov.io/skip1: CKV_K8S_43=the image digest is a value (image.digest); a tag is the default for first installs
checkov.io/skip2: CKV_K8S_15=IfNotPresent with a versioned tag or a digest; set image.pullPolicy to Always if tags move
{{- end -}}

{{/* Environment shared by every container. */}}
{{- define "hl7gw.env" -}}
{{- if .Values.kafkaBootstrapServers }}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ .Values.kafkaBootstrapServers | quote }}
{{- end }}
{{- end -}}

{{/* Mounts and volumes shared by every container: the config, /tmp, the secrets. */}}
{{- define "hl7gw.commonMounts" -}}
- {name: config, mountPath: /etc/hl7gw, readOnly: true}
- {name: tmp, mountPath: /tmp}
{{- if .Values.secrets.existingSecret }}
- {name: secrets, mountPath: /etc/hl7gw-secrets, readOnly: true}
{{- end }}
{{- if .Values.tls.kafka.enabled }}
- {name: tls-kafka, mountPath: /etc/hl7gw-tls/kafka, readOnly: true}
{{- end }}
{{- if .Values.kafkaSasl.enabled }}
- {name: kafka-sasl, mountPath: /etc/hl7gw-kafka-sasl, readOnly: true}
{{- end }}
{{- end -}}

{{- define "hl7gw.commonVolumes" -}}
- name: config
  configMap:
    name: {{ include "hl7gw.fullname" . }}-config
    items: [{key: gateway.yaml, path: gateway.yaml}]
- name: tmp
  emptyDir: {sizeLimit: 64Mi}
{{- if .Values.secrets.existingSecret }}
- name: secrets
  secret: {secretName: {{ .Values.secrets.existingSecret | quote }}, optional: true}
{{- end }}
{{- if .Values.tls.kafka.enabled }}
- name: tls-kafka
  secret: {secretName: {{ .Values.tls.kafka.secretName | quote }}}
{{- end }}
{{- if .Values.kafkaSasl.enabled }}
- name: kafka-sasl
  secret:
    secretName: {{ .Values.kafkaSasl.passwordSecret.name | quote }}
    items: [{key: {{ .Values.kafkaSasl.passwordSecret.key | quote }}, path: password}]
{{- end }}
{{- end -}}

{{- define "hl7gw.profilesConfigMap" -}}
{{- if .Values.profiles.existingConfigMap -}}
{{- .Values.profiles.existingConfigMap -}}
{{- else -}}
{{- include "hl7gw.fullname" . }}-profiles
{{- end -}}
{{- end -}}

{{- define "hl7gw.profilesVolume" -}}
- name: profiles
  configMap: {name: {{ include "hl7gw.profilesConfigMap" . | quote }}, optional: true}
{{- end -}}

{{/* HTTP probes on the named port `http`. */}}
{{- define "hl7gw.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: http}
  {{- toYaml .Values.probes.startup | nindent 2 }}
livenessProbe:
  httpGet: {path: /healthz, port: http}
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet: {path: /readyz, port: http}
  {{- toYaml .Values.probes.readiness | nindent 2 }}
{{- end -}}
