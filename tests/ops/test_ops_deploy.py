"""deploy/k8s renders (kubectl kustomize) and validates against the Kubernetes schemas
(kubernetes-validate, offline) with FlowChat's hardening rules; so does the Helm chart
deploy/helm/flowchat (rendered and linted by Helm's own library, helm-python-sdk, as
`helm template` and `helm lint --strict` would), and it renders the same objects as the
prod overlay; docker-compose.yml resolves (docker compose config) and the Dockerfile
passes hadolint."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from flowchat_contracts import topology

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
CHART = ROOT / "deploy" / "helm" / "flowchat"
#: What the hardening checks run on: every overlay and the chart's default render.
TARGETS = [*OVERLAYS, "helm"]
KUBERNETES_VERSION = "1.30.0"
SERVICES = {"gateway": 8700, "tenant": 8701, "conversation": 8702, "sender": 8703}
SERVICES["state-manager"] = 8704
SERVICES["relay"] = 8706
SERVICES["inbox"] = 8707
SERVICES["console"] = 8708

#: Custom resources have no schema in kubernetes-validate; these hold the fields
#: FlowChat relies on (from the KEDA and RabbitMQ cluster operator CRDs).
CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "keda.sh/v1alpha1/ScaledObject": {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["scaleTargetRef", "triggers"],
                "properties": {
                    "scaleTargetRef": {"type": "object", "required": ["name"]},
                    "minReplicaCount": {"type": "integer", "minimum": 0},
                    "maxReplicaCount": {"type": "integer", "minimum": 1},
                    "triggers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["type", "metadata"],
                            "properties": {
                                "metadata": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                }
                            },
                        },
                    },
                },
            }
        },
    },
    "keda.sh/v1alpha1/TriggerAuthentication": {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "secretTargetRef": {
                        "type": "array",
                        "items": {"type": "object", "required": ["parameter", "name", "key"]},
                    }
                },
            }
        },
    },
    "rabbitmq.com/v1beta1/RabbitmqCluster": {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["replicas"],
                "properties": {
                    "replicas": {"type": "integer", "minimum": 1},
                    "image": {"type": "string"},
                    "rabbitmq": {
                        "type": "object",
                        "properties": {
                            "additionalPlugins": {"type": "array", "items": {"type": "string"}},
                            "additionalConfig": {"type": "string"},
                        },
                    },
                },
            }
        },
    },
}


_MONITOR_ENDPOINT: dict[str, Any] = {
    "type": "object",
    "required": ["port", "path"],
    "properties": {
        "port": {"type": "string"},
        "path": {"type": "string"},
        "interval": {"type": "string"},
        "honorLabels": {"type": "boolean"},
        "params": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}
_SELECTOR: dict[str, Any] = {
    "type": "object",
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array", "items": {"type": "object"}},
    },
}
#: The Prometheus Operator's objects (monitoring.coreos.com/v1), the fields FlowChat uses.
CRD_SCHEMAS.update(
    {
        "monitoring.coreos.com/v1/ServiceMonitor": {
            "type": "object",
            "required": ["spec"],
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["selector", "endpoints"],
                    "properties": {
                        "jobLabel": {"type": "string"},
                        "selector": _SELECTOR,
                        "endpoints": {"type": "array", "minItems": 1, "items": _MONITOR_ENDPOINT},
                    },
                }
            },
        },
        "monitoring.coreos.com/v1/PodMonitor": {
            "type": "object",
            "required": ["spec"],
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["selector", "podMetricsEndpoints"],
                    "properties": {
                        "selector": _SELECTOR,
                        "podMetricsEndpoints": {
                            "type": "array",
                            "minItems": 1,
                            "items": _MONITOR_ENDPOINT,
                        },
                    },
                }
            },
        },
        "monitoring.coreos.com/v1/PrometheusRule": {
            "type": "object",
            "required": ["spec"],
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["groups"],
                    "properties": {
                        "groups": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["name", "rules"],
                                "properties": {
                                    "rules": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["expr"],
                                            "properties": {"expr": {"type": "string"}},
                                        },
                                    }
                                },
                            },
                        }
                    },
                }
            },
        },
    }
)


def render(overlay: str, kubectl: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def helm() -> Any:
    return pytest.importorskip(
        "helm_python", reason="the ops dependency group (uv run --group ops): Helm's library"
    )


def render_chart(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``helm template flowchat deploy/helm/flowchat -n flowchat`` (an install)."""
    with helm().Chart.load(str(CHART)) as chart:
        manifests = chart.render(values, name="flowchat", namespace="flowchat", is_install=True)
    return [d for text in manifests.values() for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="module")
def rendered(kubectl) -> dict[str, list[dict[str, Any]]]:
    out = {overlay: render(overlay, kubectl) for overlay in OVERLAYS}
    out["helm"] = render_chart()
    return out


def trigger_queues(trigger: dict[str, Any]) -> set[str]:
    """The topology's queues a KEDA rabbitmq trigger counts: its queue, or every queue its
    regex matches (``useRegex``, summed)."""
    meta = trigger["metadata"]
    if meta.get("useRegex") != "true":
        return {meta["queueName"]}
    assert meta["operation"] == "sum"
    names = {q.name for q in topology.QUEUE_SPECS}
    return {q for q in names if re.search(meta["queueName"], q)}


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_there_are_dev_and_prod_overlays():
    assert {"dev", "prod"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", TARGETS)
def test_every_manifest_validates_against_the_kubernetes_schemas(overlay, rendered):
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="the ops dependency group (uv run --group ops)"
    )
    for doc in rendered[overlay]:
        what = f"{doc['kind']}/{doc['metadata']['name']}"
        key = f"{doc['apiVersion']}/{doc['kind']}"
        if key in CRD_SCHEMAS:
            jsonschema.validate(doc, CRD_SCHEMAS[key])
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{overlay}: {what}: {exc.message} at {list(exc.path)}")


def containers(doc: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    pod = doc["spec"]["template"]["spec"]
    return pod, pod["containers"] + pod.get("initContainers", [])


@pytest.mark.parametrize("overlay", TARGETS)
def test_workloads_are_hardened(overlay, rendered):
    for doc in rendered[overlay]:
        if doc["kind"] not in ("Deployment", "Job", "StatefulSet"):
            continue
        pod, ctrs = containers(doc)
        name = doc["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod.get("automountServiceAccountToken") is False, name
        for c in ctrs:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"], (name, c["name"])
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), (name, c["name"])
            assert {"cpu", "memory"} <= set(c["resources"]["limits"]), (name, c["name"])


@pytest.mark.parametrize("overlay", TARGETS)
def test_every_service_has_probes_a_service_a_pdb_and_scrape_annotations(overlay, rendered):
    docs = rendered[overlay]
    deployments = by_kind(docs, "Deployment")
    services = by_kind(docs, "Service")
    pdbs = by_kind(docs, "PodDisruptionBudget")
    for name, port in SERVICES.items():
        _, (c, *_) = containers(deployments[name])
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["ports"][0]["containerPort"] == port
        env = {e["name"]: e.get("value") for e in c["env"]}
        prefix = "FLOWCHAT_" + name.upper().replace("-", "_")
        assert env[f"{prefix}_HTTP_PORT"] == str(port)
        assert env[f"{prefix}_HTTP_HOST"] == "0.0.0.0"
        annotations = deployments[name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port)
        assert services[name]["spec"]["ports"][0]["port"] == port
        assert pdbs[name]["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": name}
        secrets = {e["secretRef"]["name"] for e in c["envFrom"] if "secretRef" in e}
        assert "flowchat-secrets" in secrets
        assert ("flowchat-tenant-secrets" in secrets) == (name == "tenant")
        assert ("flowchat-relay-secrets" in secrets) == (name == "relay")


@pytest.mark.parametrize("overlay", TARGETS)
def test_queue_workers_scale_on_their_queue_and_the_broker_is_a_cluster(overlay, rendered):
    docs = rendered[overlay]
    scaled = by_kind(docs, "ScaledObject")
    queues = {
        "sender": topology.QUEUE_OUTBOUND,
        "conversation": topology.QUEUE_CONVERSATION_INBOUND,
    }
    for name, queue in queues.items():
        assert scaled[name]["spec"]["scaleTargetRef"]["name"] == name
        assert queue in trigger_queues(scaled[name]["spec"]["triggers"][0])
    (broker,) = by_kind(docs, "RabbitmqCluster").values()
    assert broker["spec"]["replicas"] == (1 if overlay == "dev" else 3)
    assert "default_queue_type = quorum" in broker["spec"]["rabbitmq"]["additionalConfig"]
    job = by_kind(docs, "Job")["flowchat-migrate"]
    migrated = {c["name"] for c in job["spec"]["template"]["spec"]["containers"]}
    assert migrated == {"tenant", "conversation", "state-manager", "relay", "inbox"}
    policies = by_kind(docs, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"]["podSelector"] == {}


def test_dev_overlay_generates_every_secret_it_refers_to(rendered):
    docs = rendered["dev"]
    secrets = set(by_kind(docs, "Secret"))
    for auth in by_kind(docs, "TriggerAuthentication").values():
        refs = auth["spec"]["secretTargetRef"]
        assert {ref["name"] for ref in refs} <= secrets
        for ref in refs:  # the key is in the generated secret
            assert ref["key"] in by_kind(docs, "Secret")[ref["name"]].get("data", {})
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            for c in containers(doc)[1]:
                for source in c.get("envFrom", []):
                    if "secretRef" in source:
                        assert source["secretRef"]["name"] in secrets


def test_dev_overlay_ships_the_sandbox_and_prod_does_not(rendered):
    assert "sandbox" in by_kind(rendered["dev"], "Deployment")
    assert "sandbox" not in by_kind(rendered["prod"], "Deployment")
    prod_images = {
        c["image"]
        for d in by_kind(rendered["prod"], "Deployment").values()
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert all(":" in image and not image.endswith(":dev") for image in prod_images)


def test_the_migration_script_names_real_modules():
    script = (K8S / "base" / "migrate.py").read_text()
    compile(script, "migrate.py", "exec")
    for service in ("tenant", "conversation", "state_manager", "relay", "inbox"):
        module = __import__(f"flowchat_{service}.app", fromlist=["MIGRATIONS"])
        assert Path(module.MIGRATIONS).is_dir()


# ------------------------------------------------------------------ Docker


def test_docker_compose_config_resolves_the_whole_system(docker_compose):
    compose = docker_compose
    env = {
        "PATH": "/usr/bin:/bin",
        "FLOWCHAT_SERVICE_TOKEN": "t" * 24,
        "FLOWCHAT_OPERATOR_KEY": "o" * 24,
        "FLOWCHAT_TENANT_ENCRYPTION_KEYS": "k" * 44,
        "FLOWCHAT_RELAY_ENCRYPTION_KEYS": "k" * 44,
    }
    result = subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    expected = {"rabbitmq", "redis", "postgres", "prometheus", "grafana", "sandbox", *SERVICES}
    assert set(services) == expected
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t for job in scrape["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    for name, port in {**SERVICES, "sandbox": 8705}.items():
        svc = services[name]
        assert svc["build"]["args"] == {"SERVICE": name}
        assert svc["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        assert svc["read_only"] is True
        assert svc["cap_drop"] == ["ALL"]
        prefix = "FLOWCHAT_" + name.upper().replace("-", "_")
        assert svc["environment"][f"{prefix}_HTTP_PORT"] == str(port)
        assert svc["environment"]["SERVICE_PORT"] == str(port)
        assert svc["command"] == ["serve"]  # python -m flowchat_<name> serve
        assert f"{name}:{port}" in targets
    assert "rabbitmq:15692" in targets


def test_dockerfile_passes_hadolint_and_runs_as_non_root(hadolint):
    dockerfile = ROOT / "deploy" / "docker" / "Dockerfile"
    result = subprocess.run(
        [hadolint, str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    final = text[text.rindex("\nFROM ") :]
    assert "USER 10001" in final
    assert "--no-editable" in text
    assert "--no-dev" in text
    assert "COPY --from=build" in final


# ------------------------------------------------------------------ packaging (issue 27)

#: Every queue a service consumes, and so scales on (KEDA).
CONSUMED = {
    "sender": {topology.QUEUE_OUTBOUND, topology.QUEUE_OUTBOUND_BULK},
    "conversation": {*topology.CONVERSATION_INBOUND_QUEUES, topology.QUEUE_CONVERSATION_EVENTS},
    "state-manager": {topology.QUEUE_STATE_STATUS},
    "relay": {topology.QUEUE_RELAY_EVENTS, topology.QUEUE_RELAY_INBOUND},
}
MONITORING = K8S / "components" / "monitoring"


@pytest.mark.parametrize("overlay", TARGETS)
def test_every_consumer_scales_on_every_queue_it_consumes(overlay, rendered):
    scaled = by_kind(rendered[overlay], "ScaledObject")
    deployments = by_kind(rendered[overlay], "Deployment")
    for name, queues in CONSUMED.items():
        assert name in deployments
        spec = scaled[name]["spec"]
        assert spec["scaleTargetRef"]["name"] == name
        assert spec["minReplicaCount"] >= (1 if overlay == "dev" else 2)
        triggers = spec["triggers"]
        assert set().union(*(trigger_queues(t) for t in triggers)) == queues
        for t in triggers:  # a regex sums queues over the management API (http)
            regex = t["metadata"].get("useRegex") == "true"
            auth = "flowchat-rabbitmq-management" if regex else "flowchat-rabbitmq"
            assert t["authenticationRef"]["name"] == auth
            assert t["metadata"]["protocol"] == ("http" if regex else "amqp")
        if name == "conversation":  # never more replicas than partitions
            assert spec["maxReplicaCount"] <= topology.CONVERSATION_PARTITIONS


@pytest.mark.parametrize("overlay", TARGETS)
def test_the_inbox_scales_on_its_history_queue(overlay, rendered):
    """Live updates (GET /v1/stream) fan out through the inbox.live exchange, so the inbox
    runs several replicas and KEDA scales it on inbox.history."""
    assert by_kind(rendered[overlay], "Deployment")["inbox"]["spec"]["replicas"] >= 1
    scaled = by_kind(rendered[overlay], "ScaledObject")["inbox"]
    assert [t["metadata"]["queueName"] for t in scaled["spec"]["triggers"]] == ["inbox.history"]


@pytest.mark.parametrize("overlay", TARGETS)
def test_the_relay_delivers_to_private_addresses_in_the_dev_overlay_only(overlay, rendered):
    (config,) = (
        d
        for d in rendered[overlay]
        if d["kind"] == "ConfigMap" and "flowchat-config" in d["metadata"]["name"]
    )
    allowed = config["data"].get("FLOWCHAT_RELAY_ALLOW_PRIVATE_TARGETS")
    assert allowed == ("true" if overlay == "dev" else None)
    assert config["data"]["FLOWCHAT_RELAY_URL"] == "http://relay:8706"
    assert config["data"]["FLOWCHAT_INBOX_URL"] == "http://inbox:8707"


@pytest.mark.parametrize("overlay", TARGETS)
def test_every_service_has_a_prestop_hook_inside_its_grace_period(overlay, rendered):
    for name, doc in by_kind(rendered[overlay], "Deployment").items():
        if name not in SERVICES:
            continue
        pod, (c, *_) = containers(doc)
        command = c["lifecycle"]["preStop"]["exec"]["command"]
        assert command[0] == "sleep", name
        assert 0 < int(command[1]) < pod["terminationGracePeriodSeconds"] - 20, name
        assert name in by_kind(rendered[overlay], "PodDisruptionBudget")


def load_monitoring_generator() -> Any:
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("flowchat_k8s_rules", MONITORING / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_prometheus_rule_object_is_generated_and_current():
    generator = load_monitoring_generator()
    on_disk = (MONITORING / "prometheusrule.yaml").read_text()
    assert generator.render() == on_disk, "run deploy/k8s/components/monitoring/generate.py"


def test_prod_ships_the_prometheus_operator_objects_from_the_same_rule_files(rendered):
    docs = rendered["prod"]
    (rule,) = by_kind(docs, "PrometheusRule").values()
    groups = []
    for path in sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml")):
        groups += yaml.safe_load(path.read_text())["groups"]
    assert rule["spec"]["groups"] == groups
    assert rule["metadata"]["namespace"] == "flowchat"
    (monitor,) = by_kind(docs, "ServiceMonitor").values()
    (selector,) = monitor["spec"]["selector"]["matchExpressions"]
    assert set(SERVICES) <= set(selector["values"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True  # the metrics' own service label wins
    assert monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    for name in SERVICES:  # the endpoint names a port every Service has
        service = by_kind(docs, "Service")[name]
        assert service["spec"]["ports"][0]["name"] == endpoint["port"]
        assert service["metadata"]["labels"]["app.kubernetes.io/name"] == name
    (pods,) = by_kind(docs, "PodMonitor").values()
    (broker,) = by_kind(docs, "RabbitmqCluster").values()
    assert (
        pods["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        == (broker["metadata"]["name"])
    )
    assert "rabbitmq_prometheus" in broker["spec"]["rabbitmq"]["additionalPlugins"]
    detailed = [e for e in pods["spec"]["podMetricsEndpoints"] if e["path"] == "/metrics/detailed"]
    (endpoint,) = detailed
    assert {"queue_coarse_metrics", "queue_consumer_count"} <= set(endpoint["params"]["family"])


def test_no_broker_the_runbook_uses_needs_the_shovel_plugin():
    """The runbook replays the DLQ through the sender's API or CLI: no shovel anywhere."""
    runbook = (ROOT / "docs" / "operations.md").read_text()
    assert "set_parameter shovel" not in runbook
    assert "python -m flowchat_sender dlq replay" in runbook
    assert "/internal/v1/dlq/replay" in runbook
    assert "/internal/v1/dlq/discard" in runbook


# ------------------------------------------------------------------ the Helm chart

#: What Helm adds and kustomize does not (or names differently): release bookkeeping.
HELM_ONLY_LABELS = {"app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "helm.sh/chart"}
HELM_ONLY_ANNOTATIONS = {"helm.sh/hook", "helm.sh/hook-delete-policy", "checksum/config"}
#: kustomize's generated ConfigMaps carry a content hash in their names.
HASHED = re.compile(r"\b(flowchat-config|flowchat-migrate)-[a-z0-9]{10}\b")


def normalized(doc: Any) -> Any:
    if isinstance(doc, dict):
        out = {}
        for key, value in doc.items():
            if key == "namespace" and isinstance(value, str):
                continue  # kustomize writes it; `helm install -n` supplies it
            kept = value
            if key == "labels" and isinstance(value, dict):
                kept = {k: v for k, v in value.items() if k not in HELM_ONLY_LABELS}
            if key == "annotations" and isinstance(value, dict):
                kept = {k: v for k, v in value.items() if k not in HELM_ONLY_ANNOTATIONS}
                if not kept:
                    continue
            out[key] = normalized(kept)
        return out
    if isinstance(doc, list):
        return [normalized(v) for v in doc]
    if isinstance(doc, str):
        return HASHED.sub(r"\1", doc)
    return doc


def keyed(docs: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    return {(d["kind"], HASHED.sub(r"\1", d["metadata"]["name"])): normalized(d) for d in docs}


def test_helm_lint_is_clean():
    report = helm().lint(str(CHART), strict=True, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems, problems
    assert not report["errors"]
    assert report["total_charts_linted"] == 1


def test_the_chart_renders_the_same_objects_as_the_prod_overlay(rendered):
    chart = keyed(render_chart({"namespace": {"create": True}}))
    prod = keyed(rendered["prod"])
    assert set(chart) == set(prod)
    for key, doc in prod.items():
        assert chart[key] == doc, f"{key}: the chart and deploy/k8s/overlays/prod differ"


def test_the_chart_rolls_the_services_when_their_config_changes():
    def checksums(values: dict[str, Any] | None) -> set[str]:
        return {
            d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for d in render_chart(values)
            if d["kind"] == "Deployment"
        }

    (before,) = checksums(None)
    (after,) = checksums({"config": {"LOG_LEVEL": "DEBUG"}})
    assert before != after


def test_the_chart_takes_its_rules_from_the_rule_files_and_can_leave_optional_parts_out():
    docs = render_chart({"monitoring": {"labels": {"release": "kps"}}, "keda": {"enabled": False}})
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    groups = []
    for path in sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml")):
        groups += yaml.safe_load(path.read_text())["groups"]
    assert rule["spec"]["groups"] == groups
    monitors = [d for d in docs if d["kind"] in ("ServiceMonitor", "PodMonitor", "PrometheusRule")]
    assert len(monitors) == 3
    assert all(d["metadata"]["labels"]["release"] == "kps" for d in monitors)
    assert not [d for d in docs if d["kind"] in ("ScaledObject", "TriggerAuthentication")]
    bare = render_chart({"monitoring": {"enabled": False}, "ingress": {"enabled": False}})
    assert not {"ServiceMonitor", "PodMonitor", "PrometheusRule", "Ingress"} & {
        d["kind"] for d in bare
    }
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"


@pytest.mark.parametrize("overlay", TARGETS)
def test_every_flowchat_container_starts_with_serve(overlay, rendered):
    """A service runs only with `python -m flowchat_<name> serve` (the image's entry point
    plus this argument); the migration jobs run their own command."""
    for name, deployment in by_kind(rendered[overlay], "Deployment").items():
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            if "flowchat/" in c["image"]:
                assert c.get("args") == ["serve"], (overlay, name)
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    assert dockerfile.rstrip().endswith('CMD ["serve"]')
