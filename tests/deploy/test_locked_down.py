"""Locked by default: what every kustomization a user applies renders to.

Each overlay (and kserve/) mounts an API keys Secret made by kustomize and requires keys,
so an unedited deployment refuses to start (checked with the server's own startup
check on the Secret's rendered content); the way docs/deployment.md sets real keys is
rendered too; the management API is off; the NetworkPolicy admits the ingress
controller and Prometheus only, evaluated on the rendered selectors as Kubernetes would.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest
import yaml

from serving.auth import load_api_keys
from serving.cli import CLIError
from serving.config import Settings
from serving.server_cli import check_api_keys
from tests.deploy.helpers import KUSTOMIZATIONS, ROOT, documents, find, kustomize

OVERLAYS = ["cpu", "gpu"]
KEYS_SECRET = "modelserve-api-keys"
DOCS = ROOT / "docs" / "deployment.md"
# The sources the NetworkPolicy admits, as docs/deployment.md names them:
# (namespace labels, pod labels, ports).
INGRESS_CONTROLLER = ({"kubernetes.io/metadata.name": "ingress-nginx"},
                      {"app.kubernetes.io/name": "ingress-nginx"}, {"http", "grpc"})
PROMETHEUS = ({"kubernetes.io/metadata.name": "monitoring"},
              {"app.kubernetes.io/name": "prometheus"}, {"http"})


def settings_of(docs: list[dict]) -> Settings:
    data = find(docs, "ConfigMap")["data"]
    return Settings(**{k.removeprefix("MODELSERVE_").lower(): v for k, v in data.items()})


def keys_file_of(docs: list[dict], directory: Path) -> Path:
    """The Secret's keys file, written out as the pod would see it."""
    (name, encoded), = find(docs, "Secret")["data"].items()
    path = directory / name
    path.write_bytes(base64.b64decode(encoded))
    return path


def mounted_secret(pod: dict, container: dict, keys_file: Path) -> str:
    """The name of the Secret mounted where ``keys_file`` is read, read-only."""
    mounts = [m for m in container["volumeMounts"] if m["mountPath"] == str(keys_file.parent)]
    assert len(mounts) == 1 and mounts[0]["readOnly"], container["volumeMounts"]
    volume = next(v for v in pod["volumes"] if v["name"] == mounts[0]["name"])
    return volume["secret"]["secretName"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_mount_the_key_secret_and_require_keys(rendered: dict[str, str],
                                                        overlay: str) -> None:
    docs = documents(rendered[overlay])
    settings = settings_of(docs)
    assert settings.require_api_keys and settings.api_keys_file is not None
    assert settings.api_keys == []  # keys never sit in the ConfigMap
    secret = find(docs, "Secret")
    # A generated name (content hash): new keys roll the pods.
    assert re.fullmatch(f"{KEYS_SECRET}-[a-z0-9]{{10}}", secret["metadata"]["name"])
    assert set(secret["data"]) == {settings.api_keys_file.name}
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert mounted_secret(pod, pod["containers"][0], settings.api_keys_file) == \
        secret["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_unedited_secret_holds_no_key_so_the_server_refuses_to_start(
        rendered: dict[str, str], overlay: str, tmp_path: Path) -> None:
    docs = documents(rendered[overlay])
    settings = settings_of(docs).model_copy(
        update={"api_keys_file": keys_file_of(docs, tmp_path)})
    assert load_api_keys(settings) == []
    with pytest.raises(CLIError, match="no API key"):
        check_api_keys(settings)


def documented_overlay() -> dict:
    """The kustomization docs/deployment.md tells users to write for real keys."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    matching = [yaml.safe_load(b) for b in blocks if "behavior: replace" in b]
    assert len(matching) == 1, "docs/deployment.md shows one kustomization replacing the keys"
    return matching[0]


def test_documented_way_to_set_real_keys_renders_and_starts(kubectl: str,
                                                            tmp_path: Path) -> None:
    overlay = documented_overlay()
    (tmp_path / "api-keys.txt").write_text("first-key-6f0c\nsecond-key-91ad\n")
    # kustomize takes relative paths only; the user's checkout is this repository
    overlay["resources"] = [os.path.relpath(KUSTOMIZATIONS["cpu"], tmp_path)]
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(overlay))
    docs = documents(kustomize(kubectl, tmp_path))
    settings = settings_of(docs)
    secret_name = find(docs, "Secret")["metadata"]["name"]
    pod = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert mounted_secret(pod, pod["containers"][0], settings.api_keys_file) == secret_name
    with_keys = settings.model_copy(update={"api_keys_file": keys_file_of(docs, tmp_path)})
    assert load_api_keys(with_keys) == [b"first-key-6f0c", b"second-key-91ad"]
    check_api_keys(with_keys)  # starts


def test_kserve_is_locked_the_same_way(rendered: dict[str, str], tmp_path: Path) -> None:
    docs = documents(rendered["kserve"])
    predictor = find(docs, "InferenceService")["spec"]["predictor"]
    server = predictor["containers"][0]
    env = {e["name"].removeprefix("MODELSERVE_").lower(): e["value"] for e in server["env"]}
    settings = Settings(**env)
    assert settings.require_api_keys and not settings.repository_api
    assert settings.open_pages is False  # only health and /metrics without a key
    secret = find(docs, "Secret")
    assert mounted_secret(predictor, server, settings.api_keys_file) == \
        secret["metadata"]["name"]
    with pytest.raises(CLIError, match="no API key"):
        check_api_keys(settings.model_copy(
            update={"api_keys_file": keys_file_of(docs, tmp_path)}))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_management_api_is_off_and_readiness_strict(rendered: dict[str, str],
                                                    overlay: str) -> None:
    settings = settings_of(documents(rendered[overlay]))
    assert settings.repository_api is False
    assert settings.strict_readiness is True
    # The playground and /docs need a key too: only health and /metrics are open.
    assert settings.open_pages is False


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value, values = labels.get(expr["key"]), expr.get("values", [])
        ok = {"In": value in values, "NotIn": value not in values,
              "Exists": expr["key"] in labels, "DoesNotExist": expr["key"] not in labels}
        if not ok[expr["operator"]]:
            return False
    return True


def admitted(policy: dict, namespace: dict[str, str], pod: dict[str, str]) -> set[str]:
    """The named ports a pod with these labels may reach, by the policy's ingress rules."""
    ports: set[str] = set()
    for rule in policy["ingress"]:
        peers = rule.get("from")
        if not peers or any(selects(p.get("namespaceSelector", {}), namespace)
                            and selects(p.get("podSelector", {}), pod) for p in peers):
            ports |= {p["port"] for p in rule.get("ports", [{"port": "any"}])}
    return ports


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_admits_only_the_ingress_controller_and_prometheus(
        rendered: dict[str, str], overlay: str) -> None:
    docs = documents(rendered[overlay])
    policy = find(docs, "NetworkPolicy")["spec"]
    namespace = find(docs, "Namespace")["metadata"]["name"]
    pod_labels = find(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selects(policy["podSelector"], pod_labels)
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy["egress"] == []
    for rule in policy["ingress"]:  # no rule open to every source, no address blocks
        assert rule.get("from") and all("ipBlock" not in peer for peer in rule["from"])
    for ns_labels, labels, ports in (INGRESS_CONTROLLER, PROMETHEUS):
        assert admitted(policy, ns_labels, labels) == ports
    strangers = [  # a client in the same namespace, the right pods in the wrong place, ...
        ({"kubernetes.io/metadata.name": namespace}, {"app": "client"}),
        ({"kubernetes.io/metadata.name": namespace}, INGRESS_CONTROLLER[1]),
        (PROMETHEUS[0], INGRESS_CONTROLLER[1]),
        (INGRESS_CONTROLLER[0], {"app.kubernetes.io/name": "default-backend"}),
        ({"kubernetes.io/metadata.name": "default"}, pod_labels),
    ]
    for ns_labels, labels in strangers:
        assert admitted(policy, ns_labels, labels) == set(), (ns_labels, labels)
    container_ports = {p["name"] for p in find(docs, "Deployment")["spec"]["template"]["spec"][
        "containers"][0]["ports"]}
    assert INGRESS_CONTROLLER[2] | PROMETHEUS[2] <= container_ports


def test_docs_name_the_labels_to_adjust() -> None:
    text = DOCS.read_text()
    for ns_labels, labels, _ in (INGRESS_CONTROLLER, PROMETHEUS):
        for key, value in (*ns_labels.items(), *labels.items()):
            assert f"{key}: {value}" in text or f"{key}={value}" in text, (key, value)


def test_documented_label_patch_admits_another_ingress_controller(kubectl: str,
                                                                  tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    patches = [yaml.safe_load(b) for b in blocks if "kind: NetworkPolicy" in b]
    assert len(patches) == 1, "docs/deployment.md shows one NetworkPolicy patch"
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(
        {"resources": [os.path.relpath(KUSTOMIZATIONS["cpu"], tmp_path)], **patches[0]}))
    policy = find(documents(kustomize(kubectl, tmp_path)), "NetworkPolicy")["spec"]
    traefik = ({"kubernetes.io/metadata.name": "traefik"}, {"app.kubernetes.io/name": "traefik"})
    assert admitted(policy, *traefik) == {"http", "grpc"}
    assert admitted(policy, *INGRESS_CONTROLLER[:2]) == set()
    assert admitted(policy, *PROMETHEUS[:2]) == {"http"}
