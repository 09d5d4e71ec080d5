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

{{/*
signerCAs without its blank entries, checked, as JSON {signer: Secret name}. An
entry set to "" (or null) is no entry: that is how values remove a default one
(`helm lint` ignores a null that removes a default, `helm template` does not).
Fails on a key that is not one of signerNames, or a value that is not a name.
*/}}
{{- define "csr-signer.signerCAs" -}}
{{- $given := .Values.signerCAs | default dict -}}
{{- if not (kindIs "map" $given) -}}
{{- fail "signerCAs must be a map: signer name -> Secret name" -}}
{{- end -}}
{{- $own := dict -}}
{{- range $signer, $secret := $given -}}
{{- if $secret -}}
{{- if not (kindIs "string" $secret) -}}
{{- fail (printf "signerCAs: %q must map to a Secret name, got %v" $signer $secret) -}}
{{- end -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$" $secret) -}}
{{- fail (printf "signerCAs: %q maps to %q, which is not a Secret name (a lowercase DNS subdomain)" $signer $secret) -}}
{{- end -}}
{{- if not (has $signer $.Values.signerNames) -}}
{{- fail (printf "signerCAs: %q is not one of signerNames (%s): serve it, or set its entry to \"\" to remove it" $signer (join ", " $.Values.signerNames)) -}}
{{- end -}}
{{- $_ := set $own $signer $secret -}}
{{- end -}}
{{- end -}}
{{- toJson $own -}}
{{- end -}}

{{/*
The CA Secret of every served signer name, as JSON {signer: Secret name}: its
signerCAs entry, else ca.secretName (the controller's Settings.ca_secrets rule).
*/}}
{{- define "csr-signer.caSecrets" -}}
{{- $own := include "csr-signer.signerCAs" . | fromJson -}}
{{- $secrets := dict -}}
{{- range .Values.signerNames -}}
{{- $_ := set $secrets . (get $own . | default (include "csr-signer.caSecretName" $)) -}}
{{- end -}}
{{- toJson $secrets -}}
{{- end -}}

{{/*
The CA Secrets in use, as JSON {Secret name: [signer names it signs for]} (in
signerNames order): what RBAC lets the controller read and ca.create generates.
*/}}
{{- define "csr-signer.caSecretSigners" -}}
{{- $secrets := include "csr-signer.caSecrets" . | fromJson -}}
{{- $bySecret := dict -}}
{{- range .Values.signerNames -}}
{{- $secret := get $secrets . -}}
{{- $_ := set $bySecret $secret (append (get $bySecret $secret | default list) .) -}}
{{- end -}}
{{- toJson $bySecret -}}
{{- end -}}

{{/*
CSR_SIGNER_SIGNER_CAS: `signer=<release namespace>/<Secret>` for each signerCAs
entry, comma-separated; empty when there is none.
*/}}
{{- define "csr-signer.signerCAsEnv" -}}
{{- $entries := list -}}
{{- range $signer, $secret := include "csr-signer.signerCAs" . | fromJson -}}
{{- $entries = append $entries (printf "%s=%s/%s" $signer $.Release.Namespace $secret) -}}
{{- end -}}
{{- join "," $entries -}}
{{- end -}}

{{/*
trustBundle.signer, checked as the controller checks it (Settings.configmap_signer):
a served signer name; when empty, the trust-bundle ConfigMaps need an obvious
signer (the only one, or csr-signer.dev/knative-internal) if there are any.
*/}}
{{- define "csr-signer.trustBundleSigner" -}}
{{- $signer := .Values.trustBundle.signer -}}
{{- $served := .Values.signerNames -}}
{{- if $signer -}}
{{- if not (has $signer $served) -}}
{{- fail (printf "trustBundle.signer: %q is not one of signerNames (%s)" $signer (join ", " $served)) -}}
{{- end -}}
{{- else if and .Values.trustBundle.namespaces (gt (len $served) 1) (not (has "csr-signer.dev/knative-internal" $served)) -}}
{{- fail (printf "trustBundle.signer: the trust bundle ConfigMaps carry one signer's CA; name it (one of %s)" (join ", " $served)) -}}
{{- end -}}
{{- $signer -}}
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
