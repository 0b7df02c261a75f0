"""Contracts between the rendered manifests, the server's settings and its metrics."""

from __future__ import annotations

import re

import pytest
import yaml

from serving.config import Settings
from serving.metrics import Metrics
from tests.deploy.helpers import DEPLOY, K8S, documents, find

MARGIN_S = 5  # process exit and batcher close after the server's own shutdown budget


@pytest.fixture(scope="module")
def cpu(rendered: dict[str, str]) -> list[dict]:
    return documents(rendered["cpu"])


@pytest.fixture(scope="module")
def gpu(rendered: dict[str, str]) -> list[dict]:
    return documents(rendered["gpu"])


def container(docs: list[dict]) -> dict:
    return find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_settings_are_real_settings(rendered: dict[str, str], overlay: str) -> None:
    data = find(documents(rendered[overlay]), "ConfigMap")["data"]
    fields = {f"MODELSERVE_{name.upper()}" for name in Settings.model_fields}
    assert set(data) <= fields, set(data) - fields
    Settings(**{k.removeprefix("MODELSERVE_").lower(): v for k, v in data.items()})


@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_grace_period_covers_prestop_and_server_shutdown(rendered: dict[str, str],
                                                         overlay: str) -> None:
    docs = documents(rendered[overlay])
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    settings = Settings(**{k.removeprefix("MODELSERVE_").lower(): v
                           for k, v in find(docs, "ConfigMap")["data"].items()})
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    # The server's drain is inside shutdown_timeout_s (serving/server.py).
    assert settings.drain_seconds <= settings.shutdown_timeout_s
    assert pod["terminationGracePeriodSeconds"] >= (
        pre_stop + settings.shutdown_timeout_s + MARGIN_S)


def test_probes_ports_and_service_match(cpu: list[dict]) -> None:
    server = container(cpu)
    settings = find(cpu, "ConfigMap")["data"]
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"http": int(settings["MODELSERVE_HTTP_PORT"]),
                     "grpc": int(settings["MODELSERVE_GRPC_PORT"])}
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert server["startupProbe"]["grpc"]["port"] == ports["grpc"]
    service = find(cpu, "Service")["spec"]
    assert {p["name"]: p["targetPort"] for p in service["ports"]} == {"http": "http",
                                                                     "grpc": "grpc"}
    assert all(p.get("appProtocol") for p in service["ports"])
    strategy = find(cpu, "Deployment")["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


def test_selectors_pick_the_server_pods(cpu: list[dict]) -> None:
    labels = find(cpu, "Deployment")["spec"]["template"]["metadata"]["labels"]
    selectors = [find(cpu, "Service")["spec"]["selector"],
                 find(cpu, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
                 find(cpu, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
                 find(cpu, "Deployment")["spec"]["selector"]["matchLabels"]]
    for selector in selectors:
        assert selector.items() <= labels.items(), selector
    target = find(cpu, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "modelserve")


def test_pod_security(cpu: list[dict]) -> None:
    pod = find(cpu, "Deployment")["spec"]["template"]["spec"]
    context = container(cpu)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False
    assert context["readOnlyRootFilesystem"] and not context["allowPrivilegeEscalation"]
    assert context["capabilities"]["drop"] == ["ALL"]
    # The image's user (deploy/Dockerfile) is the one the pod runs as.
    uid = re.search(r"^ARG UID=(\d+)$", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert uid and pod["securityContext"]["runAsUser"] == int(uid.group(1))


def test_gpu_overlay_requests_a_gpu_node(gpu: list[dict]) -> None:
    pod = find(gpu, "Deployment")["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert find(gpu, "ConfigMap")["data"]["MODELSERVE_PROVIDERS"] == "cuda"
    assert pod["containers"][0]["image"].endswith("-gpu")


def exposed_metric_names() -> set[str]:
    """Sample names the server's /metrics exposes, from serving.metrics itself."""
    metrics = Metrics()
    metrics.observe_request("digit", "1", "rest", "OK", 0.01)
    metrics.batch_observer("digit", 1).queue_depth(3)
    text = metrics.render()[0].decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def test_autoscaling_metric_comes_from_the_servers_metrics(cpu: list[dict]) -> None:
    exposed = exposed_metric_names()
    rules = yaml.safe_load((K8S / "prometheus-adapter" / "config.yaml").read_text())["rules"]
    served = {}
    for rule in rules:
        series = re.match(r"(\w+)\{", rule["seriesQuery"]).group(1)
        assert series in exposed, f"{series} is not a metric of serving/metrics.py"
        served[rule["name"]["as"]] = series
    hpa_metrics = [m["pods"]["metric"]["name"]
                   for m in find(cpu, "HorizontalPodAutoscaler")["spec"]["metrics"]
                   if m["type"] == "Pods"]
    assert hpa_metrics and all(name in served for name in hpa_metrics)


def test_servicemonitor_scrapes_the_metrics_port(rendered: dict[str, str]) -> None:
    docs = documents(rendered["cpu+servicemonitor"])
    monitor = find(docs, "ServiceMonitor")
    service = find(docs, "Service")
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= \
        service["metadata"]["labels"].items()
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert all(e["port"] in ports and e["path"] == "/metrics"
               for e in monitor["spec"]["endpoints"])


def test_kserve_predictor_runs_the_server(rendered: dict[str, str]) -> None:
    isvc = find(documents(rendered["kserve"]), "InferenceService")
    server = isvc["spec"]["predictor"]["containers"][0]
    assert server["name"] == "kserve-container"
    assert [p["containerPort"] for p in server["ports"]] == [8000]
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["securityContext"]["runAsNonRoot"]
