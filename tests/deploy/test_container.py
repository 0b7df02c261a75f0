"""Build the CPU image offline with podman, run it on 127.0.0.1, predict, stop it gracefully.

The build uses a locally made Debian base and a pre-downloaded wheelhouse
(deploy/scripts/build-image.sh), so no registry has to be reachable. The container gets
the settings, the API keys mount and the grace period of the Kubernetes manifests, so
what is checked here is what a pod would do: it refuses to start with the shipped (empty)
keys Secret, and with a key it serves, answers the probes and drains on SIGTERM.

`make test` installs podman, runc and mmdebstrap with apt-get (deploy/scripts/podman-setup.sh).
These tests are skipped only where that cannot happen: not root, or no apt-get (the skip
says which); anything else that goes wrong (the setup, the base image, the build) fails.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.deploy.helpers import DEPLOY, KUSTOMIZATIONS, ROOT, documents, find, kustomize
from tests.fixtures.servers import free_port
from tests.fixtures.tiny_models import digit_reference, write_default_models

pytestmark = [pytest.mark.slow, pytest.mark.container]
IMAGE = "localhost/modelserve:pytest"
BASE_IMAGE = "localhost/modelserve-base:bookworm"  # build-image.sh's default base
BUILD_TIMEOUT_S = 900


KEY = "container-test-key-3b9e"


@dataclass
class Container:
    name: str
    url: str
    grpc_target: str
    grace_s: int
    deployment: dict


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"podman {' '.join(args)}: {result.stderr[-3000:]}"
    return result


def http(url: str, body: dict | None = None, timeout: float = 5,
         key: str | None = KEY) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_until(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    setup = subprocess.run([str(DEPLOY / "scripts" / "podman-setup.sh")], capture_output=True,
                           text=True, timeout=600)
    if setup.returncode == 3:
        pytest.skip(setup.stderr.strip())
    assert setup.returncode == 0, setup.stderr[-3000:]
    models = write_default_models(tmp_path_factory.mktemp("models"))
    before = set(podman("images", "-a", "-q", "--no-trunc").stdout.split())
    build = subprocess.run([str(DEPLOY / "scripts" / "build-image.sh"), "-m", str(models),
                            "-t", IMAGE], capture_output=True, text=True,
                           timeout=BUILD_TIMEOUT_S, cwd=ROOT)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    yield IMAGE
    # What this build made goes (the image and its unnamed stage images, ~0.4 GB each);
    # the base image stays for the next run (build-image.sh reuses it: no mmdebstrap).
    base = podman("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE, check=False)
    made = set(podman("images", "-a", "-q", "--no-trunc").stdout.split()) - before
    kept = {f"sha256:{base.stdout.strip()}", base.stdout.strip()}  # IDs with or without prefix
    podman("rmi", "-f", *(made - kept), check=False)


@pytest.fixture(scope="module")
def deployment(kubectl: str) -> dict:
    """The cpu overlay's Deployment, settings and keys Secret: the container runs with them."""
    docs = documents(kustomize(kubectl, KUSTOMIZATIONS["cpu"]))
    return {"deployment": find(docs, "Deployment"), "settings": find(docs, "ConfigMap")["data"],
            "keys": find(docs, "Secret")["data"]}


def keys_mount(deployment: dict, directory: Path, content: bytes | None = None) -> list[str]:
    """podman arguments mounting a keys folder where the pod mounts the Secret (read-only,
    readable by the image's user): the Secret's own file, or ``content`` in its place."""
    target = Path(deployment["settings"]["MODELSERVE_API_KEYS_FILE"])
    (name, encoded), = deployment["keys"].items()
    assert name == target.name
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    (directory / name).write_bytes(base64.b64decode(encoded) if content is None else content)
    (directory / name).chmod(0o644)
    return ["-v", f"{directory}:{target.parent}:ro"]


def run_args(deployment: dict, http_port: int, grpc_port: int) -> list[str]:
    """The manifests' settings and security options, bound to loopback on free ports
    (host network: nothing else can reach it). The image's dumb-init is PID 1: no --init."""
    settings = deployment["settings"] | {
        "MODELSERVE_HOST": "127.0.0.1", "MODELSERVE_HTTP_PORT": str(http_port),
        "MODELSERVE_GRPC_PORT": str(grpc_port), "MODELSERVE_WARMUP_BATCH_SIZES": "[1]"}
    env = [arg for key, value in settings.items() for arg in ("-e", f"{key}={value}")]
    return ["--network", "host", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", *env]


def test_the_shipped_keys_secret_keeps_the_container_from_starting(
        image: str, deployment: dict, tmp_path: Path) -> None:
    """As a pod applied from the overlay unedited: exit status 2, one line saying why."""
    name = f"modelserve-pytest-nokeys-{free_port()}"
    podman("run", "-d", "--name", name, *run_args(deployment, free_port(), free_port()),
           *keys_mount(deployment, tmp_path / "keys"), image)
    try:
        status = podman("wait", name, timeout=120).stdout.strip()
        logs = podman("logs", name)  # the container's own output, not podman's
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)
    lines = (logs.stdout + logs.stderr).strip().splitlines()
    assert status == "2", (status, lines[-20:])
    assert len(lines) == 1 and "no API key is configured" in lines[0], lines


@pytest.fixture(scope="module")
def container(image: str, deployment: dict, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Container]:
    http_port, grpc_port = free_port(), free_port()
    name = f"modelserve-pytest-{http_port}"
    keys = keys_mount(deployment, tmp_path_factory.mktemp("keys") / "api-keys",
                      f"# the test's key\n{KEY}\n".encode())
    podman("run", "-d", "--name", name, *run_args(deployment, http_port, grpc_port), *keys,
           image)
    spec = deployment["deployment"]["spec"]["template"]["spec"]
    handle = Container(name, f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}",
                       spec["terminationGracePeriodSeconds"], spec["containers"][0])
    try:
        wait_until(lambda: http(f"{handle.url}/v2/health/ready", key=None)[0] == 200, 90,
                   "readiness")
        yield handle
    finally:
        logs = podman("logs", name, check=False)
        print(logs.stdout[-4000:], logs.stderr[-4000:])
        podman("rm", "-f", "-t", "0", name, check=False)


def digit_request() -> tuple[dict, int]:
    pixels = np.zeros(784, dtype=np.float32)
    pixels[3 * 78:4 * 78] = 1.0  # block 3 lit: the tiny digit model answers "3"
    expected = int(np.argmax(digit_reference(pixels[None, :])[0]))
    return {"inputs": [pixels.tolist()]}, expected


def test_image_runs_as_the_manifests_non_root_user(container: Container) -> None:
    config = json.loads(podman("image", "inspect", IMAGE).stdout)[0]["Config"]
    run_as = container.deployment["securityContext"]
    assert config["User"] == "10001:10001"
    assert podman("exec", container.name, "id", "-u").stdout.strip() == "10001"
    assert run_as["runAsNonRoot"] and run_as["readOnlyRootFilesystem"]
    assert config["Entrypoint"][0] == "dumb-init"
    assert {"8000/tcp", "8500/tcp"} <= set(config["ExposedPorts"])
    no_tf = podman("exec", container.name, "python", "-c", "import tensorflow", check=False)
    assert no_tf.returncode != 0, "TensorFlow must not be in the serving image"


def test_prediction_through_the_container(container: Container) -> None:
    body, expected = digit_request()
    assert http(f"{container.url}/v1/digit:predict", body, key=None)[0] == 401
    assert http(f"{container.url}/v2/repository/models/digit/unload", {})[0] == 403
    status, answer = http(f"{container.url}/v1/digit:predict", body)
    assert status == 200, answer
    assert answer["model_name"] == "digit"
    assert answer["predictions"][0]["label"] == str(expected)
    status, answer = http(f"{container.url}/v1/text:predict", {"text": "a great fun movie"})
    assert status == 200 and answer["predictions"][0]["label"] == "positive", answer


def test_the_probes_of_the_manifests_answer(container: Container) -> None:
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        spec = container.deployment[probe]
        if "httpGet" in spec:  # the kubelet sends no API key
            status, _ = http(f"{container.url}{spec['httpGet']['path']}", key=None)
            assert status == 200, probe
        else:  # the kubelet's gRPC probe is grpc.health.v1 Check with service ""
            assert "grpc" in spec, probe
            with grpc.insecure_channel(container.grpc_target) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=spec["grpc"].get("service", "")),
                    timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, probe
    assert podman("healthcheck", "run", container.name, check=False).returncode == 0


def test_stop_drains_and_exits_within_the_grace_period(container: Container) -> None:
    """podman stop = SIGTERM to dumb-init -> server: not ready, still serving, exit 0."""
    body, expected = digit_request()
    started = time.monotonic()
    stop = subprocess.Popen(["podman", "stop", "-t", str(container.grace_s), container.name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: http(f"{container.url}/v2/health/ready", key=None)[0] == 503, 5,
                   "readiness to turn false after SIGTERM")
        # Draining: out of rotation but alive, and requests still answered.
        assert http(f"{container.url}/v2/health/live")[0] == 200
        status, answer = http(f"{container.url}/v1/digit:predict", body)
        assert status == 200 and answer["predictions"][0]["label"] == str(expected)
        stop.wait(timeout=container.grace_s + 30)
    finally:
        if stop.poll() is None:
            stop.kill()
    elapsed = time.monotonic() - started
    state = json.loads(podman("inspect", container.name).stdout)[0]["State"]
    logs = podman("logs", container.name).stderr + podman("logs", container.name).stdout
    assert stop.returncode == 0, stop.stderr
    assert state["ExitCode"] == 0, (state, logs[-3000:])  # 137 would mean killed at the end
    assert elapsed < container.grace_s, elapsed
    assert "draining" in logs and "stopped" in logs, logs[-3000:]
