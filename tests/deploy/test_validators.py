"""The offline tool chain: kustomize, kubernetes-validate --strict, checkov, hadolint, yamllint."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.helpers import DEPLOY, ROOT, documents

# The oldest Kubernetes the manifests support (preStop sleep is on by default from 1.30)
# and the newest the pinned kubernetes-validate knows.
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
# Custom resources have no schema in kubernetes-validate (it would only warn); checkov and
# the contract tests cover them.
CUSTOM_KINDS = {"ServiceMonitor", "InferenceService"}
DOCKERFILES = [DEPLOY / "Dockerfile", DEPLOY / "Dockerfile.gpu"]


def run(cmd: list[str | Path], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**os.environ, **env})


def builtin_only(rendered: dict[str, str], directory: Path) -> list[Path]:
    files = []
    for name, text in rendered.items():
        docs = [d for d in documents(text) if d["kind"] not in CUSTOM_KINDS]
        if docs:
            files.append(directory / f"{name.replace('+', '-')}.yaml")
            files[-1].write_text(yaml.safe_dump_all(docs))
    return files


def test_every_kustomization_renders(rendered: dict[str, str]) -> None:
    kinds = {name: sorted({d["kind"] for d in documents(text)}) for name, text in rendered.items()}
    assert kinds["cpu"] == kinds["gpu"] == sorted(
        ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Namespace", "NetworkPolicy",
         "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"])
    assert "ServiceMonitor" in kinds["cpu+servicemonitor"]
    assert kinds["kserve"] == ["InferenceService", "Secret", "ServiceAccount"]
    assert kinds["prometheus-adapter"] == ["ConfigMap"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_validate_strict(tools: Path, rendered: dict[str, str], tmp_path: Path,
                                    version: str) -> None:
    files = builtin_only(rendered, tmp_path)
    result = run([tools / "kubernetes-validate", "--strict", "-k", version, *files])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # It only warns on removed API versions or unknown kinds: a warning is a failure here.
    assert "WARN" not in output and "ERROR" not in output, output
    assert output.count("passed for resource") >= 15, output


def test_kubernetes_validate_rejects_an_unknown_field(tools: Path, tmp_path: Path) -> None:
    """The strict check catches a misspelt field (the check above can fail)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 80, "appProtocl": "http"}]}}))
    result = run([tools / "kubernetes-validate", "--strict", "-k", KUBERNETES_VERSIONS[-1], bad])
    assert result.returncode != 0


@pytest.mark.slow
def test_checkov_passes_on_every_rendered_manifest(tools: Path,
                                                   rendered_files: dict[str, Path]) -> None:
    files = [arg for path in rendered_files.values() for arg in ("-f", path)]
    result = run([tools / "checkov", "--config-file", DEPLOY / ".checkov.yaml",
                  "--framework", "kubernetes", *files], BC_SKIP_MAPPING="TRUE")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Failed checks: 0" in result.stdout, result.stdout[-4000:]


@pytest.mark.slow
def test_checkov_passes_on_the_dockerfiles(tools: Path) -> None:
    files = [arg for path in DOCKERFILES for arg in ("-f", path)]
    result = run([tools / "checkov", "--config-file", DEPLOY / ".checkov.yaml",
                  "--framework", "dockerfile", *files], BC_SKIP_MAPPING="TRUE")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Failed checks: 0" in result.stdout, result.stdout[-4000:]


def test_every_checkov_skip_is_justified() -> None:
    config = (DEPLOY / ".checkov.yaml").read_text()
    skips = yaml.safe_load(config)["skip-check"]
    for check in skips:
        before = config[:config.index(f"- {check}")]
        assert f"# {check} " in before, f"{check} is skipped without a reason above it"
    for dockerfile in DOCKERFILES:
        for line in dockerfile.read_text().splitlines():
            if "checkov:skip=" in line:
                assert len(line.split(":", 2)[-1].strip()) > 20, f"{dockerfile}: {line}"


def test_hadolint_passes_on_the_dockerfiles(tools: Path) -> None:
    result = run([tools / "hadolint", "--failure-threshold", "info", *DOCKERFILES])
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_passes_on_deploy(tools: Path) -> None:
    result = run([tools / "yamllint", "--strict", "-c", DEPLOY / ".yamllint.yaml", DEPLOY])
    assert result.returncode == 0, result.stdout + result.stderr
