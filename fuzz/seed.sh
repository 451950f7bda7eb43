#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ with seed inputs: the conformance corpora in
# ../shared/conformance (read from there, never copied into the repo) and
# the repo's own fixtures. Safe to run again: files are named by content.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
conf="$repo/../shared/conformance"

put() { # target file...
  local t=$1; shift
  mkdir -p "$here/corpus/$t"
  for f in "$@"; do
    [ -f "$f" ] || continue
    cp "$f" "$here/corpus/$t/seed-$(sha1sum "$f" | cut -c1-16)"
  done
}
put_prefixed() { # target prefix-byte file...
  local t=$1 b=$2; shift 2
  mkdir -p "$here/corpus/$t"
  for f in "$@"; do
    [ -f "$f" ] || continue
    local out="$here/corpus/$t/seed-$b-$(sha1sum "$f" | cut -c1-16)"
    { printf "\\x$b"; cat "$f"; } > "$out"
  done
}

shopt -s nullglob globstar
put config_yaml "$conf"/prometheus/documentation/examples/*.yml "$repo"/deploy/**/*.yml "$repo"/examples/**/*.yml
put rule_file "$conf"/prometheus/rules/fixtures/*.y*ml "$conf"/prometheus/model/rulefmt/testdata/*.y*ml "$repo"/rules/*.yml
put unit_test_file "$conf"/prometheus/cmd/promtool/testdata/*.y*ml "$repo"/rules/*.test.yml
put alertmanager_config "$conf"/alertmanager/config/testdata/*.yml "$conf"/alertmanager/doc/examples/*.yml "$repo"/alerting/*.yml
mkdir -p "$here/corpus/web_config"
cat > "$here/corpus/web_config/seed-every-key" <<'YML'
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_128_GCM_SHA256]
  curve_preferences: [X25519, CurveP521]
  min_version: TLS12
  max_version: TLS13
  prefer_server_cipher_suites: true
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  alice: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG
YML
# The receivers argus added after Alertmanager 0.25's test files.
mkdir -p "$here/corpus/alertmanager_config"
cat > "$here/corpus/alertmanager_config/seed-newer-receivers" <<'YML'
global:
  wechat_api_corp_id: corp
  rocketchat_api_url: http://127.0.0.1:1/
  rocketchat_token_id: id
route: {receiver: chat, routes: [{receiver: wx, matchers: ['team="cn"']}]}
receivers:
  - name: chat
    rocketchat_configs:
      - token: t
        channel: '#ops'
        fields: [{title: a, value: b, short: true}]
        actions: [{text: Silence, url: 'http://x/'}]
  - name: wx
    wechat_configs:
      - api_secret: s
        to_party: '2'
        message_type: markdown
    sns_configs:
      - topic_arn: 'arn:aws:sns:us-east-2:1:t.fifo'
        sigv4: {access_key: a, secret_key: s}
        attributes: {team: t}
    pushover_configs:
      - user_key_file: user
        token: t
        priority: '{{ if eq .Status "firing" }}1{{ else }}0{{ end }}'
        ttl: 2h
        monospace: true
    jira_configs:
      - project: OPS
        issue_type: Incident
        api_url: 'https://x.atlassian.net/rest/api/3'
        summary: {template: '{{ .CommonLabels.alertname }}', enable_update: false}
        description: '{"type": "doc", "version": 1, "content": []}'
        labels: ['team-{{ .CommonLabels.team }}']
        resolve_transition: Done
        reopen_transition: Reopen
        reopen_duration: 1h
        fields: {customfield_1: {value: '{{ .Status }}'}, customfield_2: ['a', 1]}
    slack_configs:
      - api_url: https://slack.com/api/chat.postMessage
        update_message: true
        http_config: {authorization: {credentials: xoxb}}
YML
put slo_spec "$conf"/sloth/examples/*.yml "$conf"/sloth/examples/windows/*.yaml "$repo"/slo/*.yml
put template "$repo"/alerting/*.tmpl "$repo"/src/notify/default.tmpl
put api_bodies "$repo"/tests/data/*.json
mkdir -p "$here/corpus/sd_groups"
printf '\x00[{"targets": ["a:9100", "b:9100"], "labels": {"env": "prod", "__meta_x": "y"}}, {"targets": null, "labels": null}]' > "$here/corpus/sd_groups/seed-json"
printf '\x01- targets: ["a:9100"]\n  labels:\n    env: prod\n- targets: []\n' > "$here/corpus/sd_groups/seed-yaml"
# A DNS answer to query 7: an SRV record whose target is compressed.
printf '\x03\x00\x07\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x04_web\x04_tcp\x07example\x00\x00\x21\x00\x01\xc0\x0c\x00\x21\x00\x01\x00\x00\x00\x3c\x00\x0d\x00\x0a\x00\x05\x1f\x90\x04host\xc0\x16' > "$here/corpus/sd_groups/seed-dns"
printf '\x02[{"Node": {"Node": "n1", "Address": "10.0.0.1", "Meta": {"rack-id": "r1"}, "TaggedAddresses": {"lan": "10.0.0.1"}}, "Service": {"ID": "web-1", "Tags": ["a"], "Address": "fe80::1", "Port": 80, "Meta": null}, "Checks": [{"CheckID": "_node_maintenance", "Status": "critical"}]}]' > "$here/corpus/sd_groups/seed-consul"
# Kubernetes list answers (mode 4, then the role's index in
# KUBERNETES_ROLES: 0 pod, 3 endpointslice, 4 node, 5 ingress).
printf '\x04\x00{"metadata": {"resourceVersion": "7"}, "items": [{"metadata": {"name": "p", "namespace": "n", "labels": {"a.b/c": "d"}, "ownerReferences": [{"kind": "ReplicaSet", "name": "r", "controller": true}]}, "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "protocol": "TCP"}]}, {"name": "s"}], "initContainers": [{"name": "i"}]}, "status": {"podIP": "fe80::1", "conditions": [{"type": "Ready", "status": "False"}]}}]}' > "$here/corpus/sd_groups/seed-k8s-pod"
printf '\x04\x03{"items": [{"metadata": {"name": "s", "namespace": "n"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}, "deprecatedTopology": {"z": "1"}}], "ports": [{"name": "m", "port": 9100}, {"port": null}]}]}' > "$here/corpus/sd_groups/seed-k8s-slice"
printf '\x04\x04{"items": [{"metadata": {"name": "n1"}, "status": {"addresses": [{"type": "Hostname", "address": "n1"}], "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}]}' > "$here/corpus/sd_groups/seed-k8s-node"
printf '\x04\x05{"items": [{"metadata": {"name": "i", "namespace": "n"}, "spec": {"tls": [{"hosts": ["*.example.com"]}], "rules": [{"host": "a.example.com", "http": {"paths": [{"path": ""}, {"path": "/x"}]}}, {"host": "b.org"}]}}]}' > "$here/corpus/sd_groups/seed-k8s-ingress"
put_prefixed exposition_text 00 "$repo"/benches/data/* "$repo"/tests/data/*.prom "$repo"/tests/data/*.txt
put_prefixed exposition_text 01 "$repo"/tests/data/*.om "$repo"/tests/data/*openmetrics*

# PromQL: every eval expression of Prometheus's own test scripts, one
# file each.
mkdir -p "$here/corpus/promql"
for f in "$conf"/prometheus/promql/promqltest/testdata/*.test; do
  grep -E '^\s*eval' "$f" | sed -E 's/^\s*eval(_fail|_warn|_info|_ordered)?\s+(instant at \S+|range from \S+ to \S+ step \S+)\s*//' \
    | while IFS= read -r q; do
        [ -n "$q" ] || continue
        printf '%s' "$q" > "$here/corpus/promql/seed-$(printf '%s' "$q" | sha1sum | cut -c1-16)"
      done
done
# The series notation of the same scripts feeds the unit-test target.
for f in "$conf"/prometheus/promql/promqltest/testdata/*.test; do
  grep -E '^\s+[a-zA-Z_{]' "$f" | head -200 > "$here/corpus/unit_test_file/seed-lines-$(basename "$f")" || true
done
# State files: what argus writes itself comes from the tests' runs; a
# minimal valid one of each keeps the fuzzer near the formats.
mkdir -p "$here/corpus/state_files" "$here/corpus/exposition_protobuf"
printf '\x03{"silences":[]}' > "$here/corpus/state_files/seed-silences"
printf '\x04{"entries":[]}' > "$here/corpus/state_files/seed-nflog"
printf '\x01{"alerts":[]}' > "$here/corpus/state_files/seed-alerts"
# Write-ahead log records, in the target's `[kind][len u16][payload]`
# form: series {__name__="up",job="a"} as id 1, then two samples of it
# (id delta +1, time delta, value bits).
mkdir -p "$here/corpus/wal_segment"
printf '\x00\x01\x14\x00\x01\x02\x08__name__\x02up\x03job\x01a\x02\x16\x00\x02\xd0\x0f\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\xd0\x0f\x00\x00\x00\x00\x00\x00\x00\x40' > "$here/corpus/wal_segment/seed-records"
printf '\x01' > "$here/corpus/wal_segment/seed-empty-raw"
# A chunk record in the chunk_file target's `[len u16][body]` form:
# series 1, two samples (t=1000 v=1, t=2000 v=2) spanning 1000 ms.
mkdir -p "$here/corpus/chunk_file"
printf '\x00\x1f\x00\x01\x00\x00\x00\x02\x00\xe8\x03\x00\x00\x00\x00\x00\x00\x00\x00\x03\xe8\x3f\xf0\x00\x00\x00\x00\x00\x00\x83\xe8\xc2\x5f\xff' > "$here/corpus/chunk_file/seed-chunk"
printf '\x01ARGUSCHK\x01\x00\x00\x00' > "$here/corpus/chunk_file/seed-empty-raw"
# The same two samples in the decimal encoding (count word 0x8002).
printf '\x00\x17\x00\x01\x00\x00\x00\x02\x80\xe8\x03\x00\x00\x00\x00\x00\x00\x00\x00\x03\xe8\x04\x18\x3e\x88\x20' > "$here/corpus/chunk_file/seed-decimal"
# The same record with its index entry (mode 6: index entries given, the
# header and checksum added): series 1, stream at offset 30, 21 bytes.
printf '\x06\x18\x00\x01\x00\x00\x00\x1e\x00\x00\x00\xe8\x03\x00\x00\x00\x00\x00\x00\xe8\x03\x00\x00\x15\x00\x02\x00\x1f\x00\x01\x00\x00\x00\x02\x00\xe8\x03\x00\x00\x00\x00\x00\x00\x00\x00\x03\xe8\x3f\xf0\x00\x00\x00\x00\x00\x00\x83\xe8\xc2\x5f\xff' > "$here/corpus/chunk_file/seed-indexed"
# Small hand-written inputs for the formats the corpora above lack.
printf '\x00# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\nhttp_requests_total{code="200",method="get"} 1027 1395066363000\nhttp_requests_total{code="400"} 3\n# TYPE rpc histogram\nrpc_bucket{le="0.05"} 24054\nrpc_bucket{le="+Inf"} 144320\nrpc_sum 53423\nrpc_count 144320\nmsdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9\n' > "$here/corpus/exposition_text/seed-text"
printf '\x01# TYPE acme_http_router_request_seconds summary\n# UNIT acme_http_router_request_seconds seconds\nacme_http_router_request_seconds_sum{path="/api/v1",method="GET"} 9036.32\nacme_http_router_request_seconds_count{path="/api/v1",method="GET"} 807283.0\nacme_http_router_request_seconds_created{path="/api/v1",method="GET"} 1605281325.0\n# TYPE foo histogram\nfoo_bucket{le="0.01"} 0 # {trace_id="KOO5S4vxi0o"} 0.67\nfoo_bucket{le="+Inf"} 17\nfoo_count 17\nfoo_sum 324789.3\n# EOF\n' > "$here/corpus/exposition_text/seed-om"
printf '[{"labels":{"alertname":"HighLatency","severity":"critical"},"annotations":{"summary":"p95 high"},"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T01:00:00Z","generatorURL":"http://argus:9095/graph"}]' > "$here/corpus/api_bodies/seed-alerts"
printf '{"matchers":[{"name":"alertname","value":"High.*","isRegex":true,"isEqual":true}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2030-01-01T00:00:00Z","createdBy":"oncall","comment":"maintenance"}' > "$here/corpus/api_bodies/seed-silence"
printf '{"id":"argus-b","start_time":1,"config_hash":"x","time":1700000000000,"full":false,"sync":{"nflog":[],"silences":[]}}' > "$here/corpus/api_bodies/seed-heartbeat"
printf '{{ define "x" }}{{ range $k, $v := .Labels }}{{ $k }}={{ $v | printf "%%q" }} {{ end }}{{ end }}{{ template "x" . }}{{ .Value | humanizePercentage }} {{ if gt .Value 0.1 }}high{{ else }}low{{ end }} {{ printf "%%5.2f|%%-4s|%%x" 3.14159 "ab" 255 }} {{ len .List }}' > "$here/corpus/template/seed-hand"

echo "seeded: $(for d in "$here"/corpus/*/; do printf '%s=%s ' "$(basename "$d")" "$(ls "$d" | wc -l)"; done)"
