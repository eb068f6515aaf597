#!/usr/bin/env bash
# Checks deploy/: every Kubernetes manifest parses as YAML and has what its
# kind requires (apiVersion, kind, metadata.name; probes, non-root, the
# drain budget, selectors that match, …), every SEATLEDGER_* name is an
# option declared in config/options.cpp, and the Dockerfile has the shape
# deployment.yaml relies on. Needs python3 with PyYAML (Debian:
# python3-yaml). Uses kubeconform too when it is installed. The alerting
# rules (deploy/prometheus/) are checked with promtool (Debian: prometheus).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's interpreter, where python3-yaml is installed (a python3 earlier in
# PATH, e.g. pyenv's, may lack it).
python=python3
[ -x /usr/bin/python3 ] && python=/usr/bin/python3
"$python" - <<'PY'
import glob
import re
import sys

import yaml

errors = []


def fail(where, message):
    errors.append(f"{where}: {message}")


def get(doc, path, where, required=True):
    node = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            if required:
                fail(where, f"missing {path}")
            return None
        node = node[part]
    return node


options = set(re.findall(r'"(SEATLEDGER_[A-Z0-9_]+)"',
                         open("config/options.cpp").read()))
if len(options) < 20:
    fail("config/options.cpp", "could not read the option names")

docs = []
for path in sorted(glob.glob("deploy/kubernetes/*.yaml")):
    try:
        with open(path) as f:
            loaded = [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as e:
        fail(path, f"not YAML: {e}")
        continue
    if not loaded:
        fail(path, "no document")
    for i, doc in enumerate(loaded):
        where = f"{path}#{i + 1}"
        if not isinstance(doc, dict):
            fail(where, "not a mapping")
            continue
        for key in ("apiVersion", "kind"):
            if not isinstance(doc.get(key), str) or not doc[key]:
                fail(where, f"missing {key}")
        name = get(doc, "metadata.name", where)
        if name is not None and not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name):
            fail(where, f"metadata.name {name!r} is not a DNS name")
        docs.append((where, doc))

by_kind = {}
for where, doc in docs:
    by_kind.setdefault(doc.get("kind"), []).append((where, doc))

expected_api = {
    "Deployment": "apps/v1", "Service": "v1", "ConfigMap": "v1",
    "Secret": "v1", "PodDisruptionBudget": "policy/v1",
    "ScaledObject": "keda.sh/v1alpha1",
    "TriggerAuthentication": "keda.sh/v1alpha1",
}
for kind, api in expected_api.items():
    if kind not in by_kind:
        fail("deploy/kubernetes", f"no {kind}")
    for where, doc in by_kind.get(kind, []):
        if doc.get("apiVersion") != api:
            fail(where, f"{kind} wants apiVersion {api}")
for kind in by_kind:
    if kind not in expected_api:
        fail("deploy/kubernetes", f"unexpected kind {kind}")

configmaps = {d["metadata"]["name"]: d for _, d in by_kind.get("ConfigMap", [])}
secrets = {d["metadata"]["name"]: d for _, d in by_kind.get("Secret", [])}

for where, cm in by_kind.get("ConfigMap", []):
    for key, value in (cm.get("data") or {}).items():
        if not isinstance(value, str):
            fail(where, f"{key}: ConfigMap values must be strings (quote them)")
        if key.startswith("SEATLEDGER_") and key not in options:
            fail(where, f"{key} is not a seatledger option")
for where, s in by_kind.get("Secret", []):
    data = dict(s.get("stringData") or {})
    data.update(s.get("data") or {})
    if not data:
        fail(where, "no data")
    for key in data:
        if key.startswith("SEATLEDGER_") and key not in options:
            fail(where, f"{key} is not a seatledger option")

deployment = None
for where, d in by_kind.get("Deployment", []):
    deployment = d
    spec = get(d, "spec", where) or {}
    if spec.get("replicas") != 3:
        fail(where, "replicas should be 3")
    selector = get(d, "spec.selector.matchLabels", where) or {}
    labels = get(d, "spec.template.metadata.labels", where) or {}
    if not selector or any(labels.get(k) != v for k, v in selector.items()):
        fail(where, "spec.selector.matchLabels must match the template labels")
    pod = get(d, "spec.template.spec", where) or {}
    if pod.get("enableServiceLinks") is not False:
        fail(where, "enableServiceLinks must be false (SEATLEDGER_SERVICE_* "
                    "variables would stop start-up)")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if not isinstance(grace, int) or grace < 65:
        fail(where, "terminationGracePeriodSeconds must cover preStop and "
                    "the 60 s drain")
    psc = pod.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"):
        fail(where, "the pod must run as a non-root user")
    containers = pod.get("containers") or []
    if not containers:
        fail(where, "no containers")
    volumes = {v.get("name"): v for v in pod.get("volumes") or []}
    for c in containers:
        cw = f"{where} container {c.get('name')}"
        for key in ("name", "image"):
            if not c.get(key):
                fail(cw, f"missing {key}")
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
        if ports.get("http") != 8080:
            fail(cw, "needs port http = 8080")
        for probe, path in (("livenessProbe", "/healthz"),
                            ("readinessProbe", "/readyz")):
            got = get(c, f"{probe}.httpGet.path", cw)
            if got != path:
                fail(cw, f"{probe} must GET {path}")
            port = get(c, f"{probe}.httpGet.port", cw)
            if port not in ("http", 8080):
                fail(cw, f"{probe} port must be http")
        if not get(c, "resources.requests", cw) or not get(c, "resources.limits", cw):
            fail(cw, "needs resources.requests and resources.limits")
        csc = c.get("securityContext") or {}
        if csc.get("allowPrivilegeEscalation") is not False:
            fail(cw, "allowPrivilegeEscalation must be false")
        for e in c.get("env") or []:
            if e.get("name", "").startswith("SEATLEDGER_") and e["name"] not in options:
                fail(cw, f"{e['name']} is not a seatledger option")
        for ref in c.get("envFrom") or []:
            if "configMapRef" in ref and ref["configMapRef"].get("name") not in configmaps:
                fail(cw, f"envFrom ConfigMap {ref['configMapRef'].get('name')} not defined")
            if "secretRef" in ref and ref["secretRef"].get("name") not in secrets:
                fail(cw, f"envFrom Secret {ref['secretRef'].get('name')} not defined")
        def mounted_from_secret(path):
            for m in c.get("volumeMounts") or []:
                vol = volumes.get(m.get("name"))
                if not vol or "secret" not in vol:
                    continue
                secret = secrets.get(vol["secret"].get("secretName"))
                for item in vol["secret"].get("items") or []:
                    if m.get("mountPath", "").rstrip("/") + "/" + item.get("path") == path:
                        return secret is not None and item.get("key") in (
                            secret.get("stringData") or secret.get("data") or {})
            return False

        # The signing key file the ConfigMap names is mounted from the Secret.
        key_file = None
        for cm in configmaps.values():
            key_file = (cm.get("data") or {}).get("SEATLEDGER_SIGNING_KEY_FILE", key_file)
        if not key_file:
            fail(cw, "no SEATLEDGER_SIGNING_KEY_FILE in the ConfigMap")
        elif not mounted_from_secret(key_file):
            fail(cw, f"{key_file} is not mounted from a defined Secret key")
        # A database URL that verifies the server's certificate names a CA
        # file that is mounted (libpq 15 reads no system store; without the
        # file it refuses every connection).
        for s in secrets.values():
            url = (s.get("stringData") or {}).get("SEATLEDGER_DATABASE_URL", "")
            if re.search(r"sslmode=verify-(ca|full)", url):
                root = re.search(r"sslrootcert=([^&\s]+)", url)
                if not root:
                    fail(cw, "SEATLEDGER_DATABASE_URL verifies the server without sslrootcert")
                elif not mounted_from_secret(root.group(1)):
                    fail(cw, f"sslrootcert {root.group(1)} is not mounted from a defined Secret key")

dep_name = deployment["metadata"]["name"] if deployment else None
pod_labels = (deployment or {}).get("spec", {}).get("template", {}).get(
    "metadata", {}).get("labels", {})

for where, s in by_kind.get("Service", []):
    selector = get(s, "spec.selector", where) or {}
    if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
        fail(where, "spec.selector does not select the Deployment's pods")
    for p in get(s, "spec.ports", where) or []:
        if not p.get("port"):
            fail(where, "a port without port")

for where, p in by_kind.get("PodDisruptionBudget", []):
    spec = get(p, "spec", where) or {}
    if ("minAvailable" in spec) == ("maxUnavailable" in spec):
        fail(where, "exactly one of minAvailable and maxUnavailable")
    selector = get(p, "spec.selector.matchLabels", where) or {}
    if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
        fail(where, "spec.selector does not select the Deployment's pods")

group = None
topics = set()
for cm in configmaps.values():
    data = cm.get("data") or {}
    group = data.get("SEATLEDGER_CONSUMER_GROUP", group)
    # Every topic the group consumes, the internal delta topic too: its lag
    # is the subscription stage's backlog.
    for key in ("SEATLEDGER_TOPIC_MEMBERSHIP", "SEATLEDGER_TOPIC_SUBSCRIPTIONS",
                "SEATLEDGER_TOPIC_CATALOG", "SEATLEDGER_TOPIC_DELTAS"):
        if key in data:
            topics.add(data[key])
auths = {d["metadata"]["name"] for _, d in by_kind.get("TriggerAuthentication", [])}
for where, ta in by_kind.get("TriggerAuthentication", []):
    for ref in get(ta, "spec.secretTargetRef", where, required=False) or []:
        secret = secrets.get(ref.get("name"))
        if secret is None:
            fail(where, f"secretTargetRef: Secret {ref.get('name')} not defined")
            continue
        keys = dict(secret.get("stringData") or {})
        keys.update(secret.get("data") or {})
        if ref.get("key") not in keys:
            fail(where, f"secretTargetRef: Secret {ref.get('name')} has no key {ref.get('key')}")
# KEDA and the service reach the same brokers: when KEDA logs in with SASL
# or TLS, the service's Kafka properties (ConfigMap or Secret) must set a
# security.protocol other than plaintext, or its replicas never get ready
# while the scaler works.
import base64


def values_of(doc):
    """A ConfigMap's or Secret's keys with their text (Secret data decoded)."""
    values = {}
    for key, value in (doc.get("data") or {}).items():
        if doc.get("kind") == "Secret":
            try:
                value = base64.b64decode(str(value)).decode()
            except Exception:
                value = ""
        values[key] = str(value)
    values.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
    return values


service_kafka_properties = ""
for doc in list(configmaps.values()) + list(secrets.values()):
    service_kafka_properties += "," + values_of(doc).get("SEATLEDGER_KAFKA_PROPERTIES", "")
# The last one wins, as in librdkafka.
protocols = re.findall(r"(?:^|,)\s*security\.protocol=([A-Za-z_]+)", service_kafka_properties)
for where, ta in by_kind.get("TriggerAuthentication", []):
    secured = False
    for ref in get(ta, "spec.secretTargetRef", where, required=False) or []:
        value = values_of(secrets.get(ref.get("name")) or {}).get(ref.get("key"), "").lower()
        if (ref.get("parameter") == "sasl" and value not in ("", "none", "plaintext")) \
                or (ref.get("parameter") == "tls" and value == "enable"):
            secured = True
    if secured and (not protocols or protocols[-1].lower() == "plaintext"):
        fail(where, "KEDA logs in to Kafka with sasl/tls, but no SEATLEDGER_KAFKA_PROPERTIES "
                    "sets the service's security.protocol")
for where, so in by_kind.get("ScaledObject", []):
    if get(so, "spec.scaleTargetRef.name", where) != dep_name:
        fail(where, "scaleTargetRef must name the Deployment")
    lo = get(so, "spec.minReplicaCount", where, required=False)
    hi = get(so, "spec.maxReplicaCount", where)
    if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
        fail(where, "minReplicaCount > maxReplicaCount")
    triggers = get(so, "spec.triggers", where) or []
    seen_topics = set()
    for t in triggers:
        if t.get("type") != "kafka":
            fail(where, "triggers must be of type kafka")
            continue
        meta = t.get("metadata") or {}
        for key in ("bootstrapServers", "consumerGroup", "topic", "lagThreshold"):
            if not isinstance(meta.get(key), str) or not meta.get(key):
                fail(where, f"kafka trigger: metadata.{key} must be a non-empty string")
        if not str(meta.get("lagThreshold", "")).isdigit():
            fail(where, "lagThreshold must be a number in a string")
        if group and meta.get("consumerGroup") != group:
            fail(where, f"consumerGroup must be {group}")
        seen_topics.add(meta.get("topic"))
        ref = (t.get("authenticationRef") or {}).get("name")
        if ref and ref not in auths:
            fail(where, f"authenticationRef {ref} not defined")
    if topics and seen_topics != topics:
        fail(where, f"triggers cover {sorted(seen_topics)}, input topics are {sorted(topics)}")

docker = open("deploy/Dockerfile").read()
for needle, what in (
        (r"^FROM debian:bookworm AS build", "a Debian 12 build stage"),
        (r"scripts/setup\.sh", "the project's setup script"),
        (r"scripts/build\.sh release", "the release build"),
        (r"^FROM debian:bookworm-slim", "a slim Debian 12 runtime stage"),
        (r"^USER 10001", "the non-root user of deployment.yaml"),
        (r"^EXPOSE 8080", "EXPOSE 8080"),
        (r'^ENTRYPOINT \["seatledger", "serve"\]', "the serve entrypoint")):
    if not re.search(needle, docker, re.M):
        fail("deploy/Dockerfile", f"missing {what}")

if errors:
    for e in errors:
        print("check: " + e, file=sys.stderr)
    sys.exit(1)
print(f"deploy: {len(docs)} manifests and the Dockerfile look right")
PY

if command -v kubeconform >/dev/null 2>&1; then
  kubeconform -strict -summary -ignore-missing-schemas deploy/kubernetes/*.yaml
fi

# The alerting rules: valid, their cases pass, and every metric they name is
# one the service exposes (adapters/metrics/registry.cpp).
promtool check rules deploy/prometheus/alerts.yaml
promtool test rules deploy/prometheus/alerts_test.yaml
exposed=$(grep -o '"seatledger_[a-z_]*"' adapters/metrics/registry.cpp | tr -d '"' | sort -u)
for name in $(grep -o 'seatledger_[a-z_]*' deploy/prometheus/alerts.yaml | sort -u); do
  # A histogram's series are its name with _bucket, _sum or _count.
  family=$(sed -E 's/_(bucket|sum|count)$//' <<<"$name")
  if ! grep -qx -e "$name" -e "$family" <<<"$exposed"; then
    echo "check: deploy/prometheus/alerts.yaml: $name is not a metric of adapters/metrics/registry.cpp" >&2
    exit 1
  fi
done
