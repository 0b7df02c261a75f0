"""``modelserve import PATH --repository models/``: a SavedModel, Keras or ONNX file in.

Cheap to import: TensorFlow (for SavedModel and Keras sources only), tf2onnx, onnx and
ONNX Runtime load inside the handler. Every failure a user can act on ends as one
line (serving.cli.CLIError), exit status 2.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from serving.cli import CLIError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "import", help="import a SavedModel, Keras or ONNX file as a new model version",
        description="Convert (TensorFlow formats, with tf2onnx), check against the source "
                    "on generated inputs, and add a version of a generic tensor model.")
    p.add_argument("path", type=Path,
                   help="a SavedModel directory, a .keras/.h5 file or an .onnx file")
    p.add_argument("--repository", "--model-repository", dest="repository", type=Path,
                   default=Path("models"), help="model repository (default models/)")
    p.add_argument("--name", default=None,
                   help="model name (default: the directory or file name)")
    p.add_argument("--signature", default=None,
                   help="SavedModel signature to serve (default serving_default, or the only "
                        "one); for an ONNX file, the signature_name clients will send")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 15-18 (default 17)")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="parity: max |TF - ONNX Runtime| relative to max(1, |TF|) "
                        "(default 1e-4)")
    p.add_argument("--dynamic-size", type=_positive, default=16,
                   help="generated inputs: size of dynamic dims besides the batch (default "
                        "16; a second run uses 1.5 times it)")
    p.add_argument("--int-range", type=_int_range, default=(0, 10), metavar="LOW,HIGH",
                   help="generated inputs: integers in [LOW, HIGH) (default 0,10)")
    p.set_defaults(func=_run_import)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _int_range(text: str) -> tuple[int, int]:
    try:
        low, high = (int(part) for part in text.replace(":", ",").split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}") from exc
    if high <= low:
        raise argparse.ArgumentTypeError(f"HIGH must exceed LOW, got {text!r}")
    return low, high


def _run_import(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # keep warnings, drop C++ INFO lines
    from serving.errors import ServingError
    from training.errors import TrainingError
    from training.importing.importer import ImportOptions, import_model

    options = ImportOptions(repository=args.repository, name=args.name,
                            signature=args.signature, opset=args.opset,
                            tolerance=args.tolerance, dynamic_size=args.dynamic_size,
                            int_range=args.int_range)
    try:
        target = import_model(args.path, options)
    except (TrainingError, ServingError, ValueError, OSError) as exc:
        message = str(exc).strip().splitlines()
        raise CLIError(message[0] if message else type(exc).__name__) from exc
    print(f"imported {args.path} as {target}")
    return 0
