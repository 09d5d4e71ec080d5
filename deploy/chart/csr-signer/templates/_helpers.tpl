{{/*
Names and labels. The release name is the object name unless fullnameOverride
is set; "csr-signer" installed as release "csr-signer" stays "csr-signer" (not
"csr-signer-csr-signer"), which keeps deploy/manifests.yaml readable.
*/}}
{{- define "csr-signer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "csr-signer.fullname" -}}
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

{{- define "csr-signer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "csr-signer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "csr-signer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "csr-signer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "csr-signer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "csr-signer.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "csr-signer.caSecretName" -}}
{{- required "ca.secretName is required" .Values.ca.secretName -}}
{{- end -}}

{{- define "csr-signer.leaseName" -}}
{{- default (include "csr-signer.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{- define "csr-signer.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/*
Policy files for the ConfigMap: the chart's copy of the bundled policies
(files/policies/*.yaml, kept equal to the repository's policies/ by a test)
unless policies.bundled is false, then policies.files on top (a file of the
same name replaces a bundled one). Rendered as a YAML map of file -> content.
*/}}
{{- define "csr-signer.policyFiles" -}}
{{- $files := dict -}}
{{- if .Values.policies.bundled -}}
{{- range $path, $_ := .Files.Glob "files/policies/*.yaml" -}}
{{- $_ := set $files (base $path) ($.Files.Get $path) -}}
{{- end -}}
{{- end -}}
{{- range $name, $content := .Values.policies.files -}}
{{- $_ := set $files $name $content -}}
{{- end -}}
{{- if not $files -}}
{{- fail "no policy files: set policies.bundled=true or give policies.files" -}}
{{- end -}}
{{- toYaml $files -}}
{{- end -}}

{{/*
ClusterTrustBundle names the controller may read, update and delete, as a JSON
list: `<signer name, / replaced by :>:bundle` (signer.trust.cluster_trust_bundle_name)
for the served signers and for retired ones whose bundles are still to be removed.
*/}}
{{- define "csr-signer.clusterTrustBundleNames" -}}
{{- $names := list -}}
{{- range (concat .Values.signerNames .Values.trustBundle.retiredSignerNames | uniq) -}}
{{- $names = append $names (printf "%s:bundle" (replace "/" ":" .)) -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}
