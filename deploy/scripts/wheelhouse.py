"""Download every wheel the serving image installs, for offline image builds.

Reads the project's runtime dependencies, one extra (cpu or gpu), the build backend and
deploy/requirements-image.txt, and runs ``pip download`` for the image's Python and
platform (binary wheels only, so the host's own Python version does not matter).
The folder is reused while the inputs are unchanged (a hash stamp).

    python deploy/scripts/wheelhouse.py --out .cache/container/context/wheels --extra cpu
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

import tomllib  # Python 3.11+, like the image

ROOT = Path(__file__).resolve().parents[2]
IMAGE_REQUIREMENTS = ROOT / "deploy" / "requirements-image.txt"
GLIBC_MINOR = 36  # Debian bookworm, the default base (python:3.11-slim-bookworm)


def default_platforms(glibc_minor: int) -> list[str]:
    # pip does not expand manylinux_2_N to the older tags it implies: list them all.
    tags = [f"manylinux_2_{minor}_x86_64" for minor in range(glibc_minor, 16, -1)]
    return [*tags, "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]


def requirements(extra: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = list(project["project"]["dependencies"])
    reqs += project["project"]["optional-dependencies"][extra]
    if extra == "gpu":  # CUDA and cuDNN from NVIDIA's wheels, as deploy/Dockerfile.gpu installs
        reqs.append("onnxruntime-gpu[cuda,cudnn]")
    reqs += project["build-system"]["requires"]
    for line in IMAGE_REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            reqs.append(line)
    return reqs


def download(reqs: list[str], out: Path, python_version: str, platforms: list[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", "--implementation", "cp", "--python-version", python_version,
           "--dest", str(out)]
    for platform in platforms:
        cmd += ["--platform", platform]
    subprocess.run([*cmd, *reqs], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--extra", default="cpu", help="pyproject extra: cpu or gpu")
    parser.add_argument("--python-version", default="3.11", help="the image's Python")
    parser.add_argument("--platform", action="append",
                        help="wheel platform tags (default: manylinux x86_64, glibc <= 2.36)")
    args = parser.parse_args()
    platforms = args.platform or default_platforms(GLIBC_MINOR)
    reqs = requirements(args.extra)
    key = "\n".join([*reqs, args.python_version, *platforms]).encode()
    stamp = args.out / ".inputs.sha256"
    digest = hashlib.sha256(key).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        print(f"wheelhouse: {args.out} up to date")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    download(reqs, args.out, args.python_version, platforms)
    stamp.write_text(digest)
    print(f"wheelhouse: {len(list(args.out.glob('*.whl')))} wheels in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
