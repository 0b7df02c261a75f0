#!/usr/bin/env python3
"""Regenerate the gRPC stubs under serving/grpc/generated/ (committed code).

Two steps, both reproducible:

``extract``   Collect the protocol definitions, as serialized FileDescriptorProtos, into
              serving/grpc/protos/descriptors.binpb (a FileDescriptorSet, committed):
              TensorFlow Serving's apis (from the tensorflow-serving-api package, which
              needs TensorFlow importable; only this step does) and KServe's Open
              Inference Protocol v2 (grpc_predict_v2.proto, read from the kserve wheel,
              downloaded with ``pip download --no-deps``), plus two of Triton's RPCs and
              their messages copied from tritonclient's grpc_service.proto (same package
              ``inference``): RepositoryIndex (the model_repository extension), so Triton
              clients can list models, and ModelStreamInfer (the bidirectional stream
              behind tritonclient's ``start_stream``/``async_stream_infer``). Package
              names, message names and field numbers stay exactly as upstream: wire
              compatibility depends on them.

``triton``    Add those Triton RPCs to the committed descriptors.binpb in place (no
              TensorFlow needed; does nothing for the ones already there).

``generate``  (default) Run ``grpc_tools.protoc --descriptor_set_in`` with a pinned,
              old grpcio-tools (installed into a temporary folder with pip), then rewrite
              the generated imports into the ``serving.grpc.generated`` package and make
              every module register into a private descriptor pool
              (serving/grpc/generated/_pool.py), so our copies never clash with the same
              names registered by TensorFlow, tritonclient or KServe in one process.

Why an old grpcio-tools: generated code needs a protobuf runtime at least as new as the
generator's, and code from protobuf >= 5.26 refuses runtimes of another major version.
Code from protobuf 4.25 has no such check and runs on protobuf 5, 6 and 7
(tests/compat/test_protobuf_versions.py proves 6 and 7).

    python scripts/gen_protos.py extract    # only when upgrading the upstream protos
    python scripts/gen_protos.py triton     # only when adding a Triton RPC
    python scripts/gen_protos.py            # regenerate serving/grpc/generated/
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "serving" / "grpc" / "protos"
DESCRIPTORS = PROTOS / "descriptors.binpb"
OUT = ROOT / "serving" / "grpc" / "generated"
PACKAGE = "serving.grpc.generated"

GRPCIO_TOOLS = "grpcio-tools==1.62.3"  # emits protobuf 4.25 code: no runtime major-version check
KSERVE = "kserve==0.21.0"
KSERVE_PB2 = "kserve/protocol/grpc/grpc_predict_v2_pb2.py"
# Modules whose descriptors (and their imports) we extract.
TFS_ROOTS = (
    "tensorflow_serving.apis.prediction_service_pb2",
    "tensorflow_serving.apis.model_service_pb2",
)
# Files that get Python code; their imports are generated along (transitively).
SERVICE_FILES = (
    "tensorflow_serving/apis/prediction_service.proto",
    "tensorflow_serving/apis/model_service.proto",
    "grpc_predict_v2.proto",
)
TRITON_SERVICE = "tritonclient.grpc.service_pb2"
TRITON_MESSAGES = ("RepositoryIndexRequest", "RepositoryIndexResponse",
                   "ModelStreamInferResponse")
TRITON_METHODS = ("RepositoryIndex", "ModelStreamInfer")
TOP_PACKAGES = ("tensorflow_serving", "tensorflow", "xla")


def _closure(file_descriptors: list) -> list:
    """Every file and its dependencies, dependencies first, each once."""
    ordered: dict[str, object] = {}

    def walk(fd) -> None:
        if fd.name in ordered:
            return
        for dep in fd.dependencies:
            walk(dep)
        ordered[fd.name] = fd

    for fd in file_descriptors:
        walk(fd)
    return list(ordered.values())


def _kserve_serialized() -> bytes:
    """The serialized grpc_predict_v2.proto that the kserve wheel's generated code embeds."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", KSERVE,
                        "-d", tmp], check=True)
        wheel = next(Path(tmp).glob("kserve-*.whl"))
        source = zipfile.ZipFile(wheel).read(KSERVE_PB2).decode()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "AddSerializedFile":
            return ast.literal_eval(node.args[0])
    raise SystemExit(f"no serialized descriptor found in {KSERVE_PB2}")


def _add_triton_rpcs(kserve) -> None:
    """Triton's RepositoryIndex and ModelStreamInfer, with their messages, into the v2
    service (each once)."""
    from google.protobuf import descriptor_pb2

    triton = descriptor_pb2.FileDescriptorProto()
    importlib.import_module(TRITON_SERVICE).DESCRIPTOR.CopyToProto(triton)
    have = {m.name for m in kserve.message_type}
    kserve.message_type.extend(m for m in triton.message_type
                               if m.name in TRITON_MESSAGES and m.name not in have)
    have = {m.name for m in kserve.service[0].method}
    kserve.service[0].method.extend(m for m in triton.service[0].method
                                    if m.name in TRITON_METHODS and m.name not in have)


def add_triton() -> None:
    from google.protobuf import descriptor_pb2

    fds = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTORS.read_bytes())
    _add_triton_rpcs(next(f for f in fds.file if f.name == "grpc_predict_v2.proto"))
    DESCRIPTORS.write_bytes(fds.SerializeToString(deterministic=True))
    print(f"wrote {DESCRIPTORS.relative_to(ROOT)} with Triton's {', '.join(TRITON_METHODS)}")


def extract() -> None:
    from google.protobuf import descriptor_pb2

    roots = [importlib.import_module(m).DESCRIPTOR for m in TFS_ROOTS]
    fds = descriptor_pb2.FileDescriptorSet()
    for fd in _closure(roots):
        proto = fds.file.add()
        fd.CopyToProto(proto)
    kserve = descriptor_pb2.FileDescriptorProto.FromString(_kserve_serialized())
    _add_triton_rpcs(kserve)
    fds.file.append(kserve)
    PROTOS.mkdir(parents=True, exist_ok=True)
    DESCRIPTORS.write_bytes(fds.SerializeToString(deterministic=True))
    print(f"wrote {DESCRIPTORS.relative_to(ROOT)}: {len(fds.file)} files")


def _protoc_env(tools_dir: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-warn-conflicts",
                    "--target", str(tools_dir), GRPCIO_TOOLS], check=True)
    return tools_dir


def _rewrite(text: str, module: str) -> str:
    tops = "|".join(TOP_PACKAGES)
    text = re.sub(rf"^from ({tops})((?:\.\w+)*) import ", rf"from {PACKAGE}.\1\2 import ",
                  text, flags=re.M)
    text = re.sub(r"^import (\w+_pb2) as", rf"from {PACKAGE} import \1 as", text, flags=re.M)
    if "_descriptor_pool.Default()" in text:
        text = text.replace("_descriptor_pool.Default()", "_pool.POOL")
        text = text.replace("from google.protobuf.internal import builder as _builder",
                            "from google.protobuf.internal import builder as _builder\n"
                            f"from {PACKAGE} import _pool", 1)
    return re.sub(r"(BuildTopDescriptorsAndMessages\(DESCRIPTOR, )'[\w.]+'",
                  rf"\1'{module}'", text)


def _postprocess(raw: Path) -> None:
    for path in sorted(raw.rglob("*.py*")):
        rel = path.relative_to(raw)
        dest = OUT / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        module = ".".join((PACKAGE, *rel.with_suffix("").parts))
        dest.write_text(_rewrite(path.read_text(), module))
    for folder in [OUT, *[p for p in OUT.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()


def generate() -> None:
    from google.protobuf import descriptor_pb2

    fds = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTORS.read_bytes())
    files = [f.name for f in fds.file if not f.name.startswith("google/protobuf/")]
    with tempfile.TemporaryDirectory() as tmp:
        tools = _protoc_env(Path(tmp) / "tools")
        raw = Path(tmp) / "raw"
        raw.mkdir()
        args = [sys.executable, "-m", "grpc_tools.protoc", f"--descriptor_set_in={DESCRIPTORS}",
                f"--python_out={raw}", f"--pyi_out={raw}", f"--grpc_python_out={raw}", *files]
        subprocess.run(args, check=True, env={"PYTHONPATH": str(tools), "PATH": "/usr/bin:/bin"})
        for path in raw.rglob("*_pb2_grpc.py"):
            if path.relative_to(raw).as_posix().replace("_pb2_grpc.py", ".proto") \
                    not in SERVICE_FILES:
                path.unlink()  # only the services' files carry stubs worth keeping
        keep = OUT / "_pool.py"
        pool_source = keep.read_text()
        shutil.rmtree(OUT, ignore_errors=True)
        _postprocess(raw)
        keep.write_text(pool_source)
    print(f"generated {len(files)} files into {OUT.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", nargs="?", default="generate",
                        choices=["extract", "triton", "generate"])
    args = parser.parse_args()
    {"extract": extract, "triton": add_triton, "generate": generate}[args.step]()


if __name__ == "__main__":
    main()
