"""``modelserve predict`` and ``modelserve models``: the client libraries from a shell.

Cheap to import: the client modules (httpx or grpcio) load only inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

DEFAULT_URLS = {"rest": "http://127.0.0.1:8000", "grpc": "127.0.0.1:8500"}
NUMBER_SUFFIXES = (".npy", ".json", ".txt", ".csv")
# Libraries that log every request at INFO (httpx: "HTTP Request: POST ..."): their lines
# would land in the table a command prints. `--log-level debug` still shows them.
CHATTY_LOGGERS = ("httpx", "httpcore", "grpc")


def _connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transport", choices=["rest", "grpc"], default="rest",
                        help="protocol to use (default rest)")
    parser.add_argument("--url", help="server address (default http://127.0.0.1:8000 for "
                                      "rest, 127.0.0.1:8500 for grpc)")
    parser.add_argument("--api-key", help="API key, if the server requires one")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")


def register(subparsers: Any) -> None:
    predict = subparsers.add_parser("predict", help="classify images, texts or digits",
                                    description="Send inputs to a running server and print "
                                                "labels and probabilities.")
    predict.add_argument("task", choices=["image", "text", "digit"])
    predict.add_argument("inputs", nargs="+", metavar="FILE|TEXT",
                         help="image files; texts ('-' reads stdin); for digit: image files "
                              "or .npy/.json/.txt files of 784 numbers")
    predict.add_argument("--model", help="model name (default: the task's model)")
    predict.add_argument("--version", type=int, help="model version (default latest)")
    predict.add_argument("--top-k", type=int, default=3, help="classes shown (default 3)")
    _connection_args(predict)
    predict.set_defaults(func=run_predict)

    models = subparsers.add_parser("models", help="list served models, versions and states")
    _connection_args(models)
    models.set_defaults(func=run_models)


def _quiet_libraries() -> None:
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


def _client(args: argparse.Namespace) -> Any:
    _quiet_libraries()
    client_class: Any
    if args.transport == "grpc":
        from clients.grpc import Client as client_class
    else:
        from clients.rest import Client as client_class
    url = args.url or DEFAULT_URLS[args.transport]
    return client_class(url, timeout=args.timeout, api_key=args.api_key)


def _digit_item(path: Path) -> Any:
    import numpy as np

    if path.suffix == ".npy":
        return np.load(path).astype("float32")
    if path.suffix == ".json":
        return np.asarray(json.loads(path.read_text()), dtype="float32")
    if path.suffix in (".txt", ".csv"):
        text = path.read_text().replace(",", " ").split()
        return np.asarray([float(v) for v in text], dtype="float32")
    return path.read_bytes()


def _inputs(task: str, values: list[str]) -> list[Any]:
    if task == "text":
        return [sys.stdin.read() if v == "-" else v for v in values]
    paths = [Path(v) for v in values]
    if task == "image":
        return [p.read_bytes() for p in paths]
    return [_digit_item(p) for p in paths]


def _print_result(result: Any, labels: list[str], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
        return
    print(f"model {result.model_name} version {result.model_version}")
    for name, prediction in zip(labels, result.predictions, strict=False):
        others = ", ".join(f"{lbl} {p:.3f}" for lbl, p in prediction.top[1:])
        print(f"{name}: {prediction.label} ({prediction.probability:.3f})"
              + (f"  [{others}]" if others else ""))


def run_predict(args: argparse.Namespace) -> int:
    from clients.errors import ClientError
    from serving.cli import CLIError

    try:
        items = _inputs(args.task, args.inputs)
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read input: {exc}") from exc
    with _client(args) as client:
        predict = getattr(client, f"predict_{args.task}")
        try:
            if args.task == "digit":
                items = [it if isinstance(it, bytes) else it.reshape(-1) for it in items]
            result = predict(items, model=args.model, version=args.version, top_k=args.top_k)
        except (ClientError, ValueError) as exc:
            raise CLIError(str(exc)) from exc
    names = args.inputs if args.task != "text" else [t[:40] for t in items]
    _print_result(result, names, args.json)
    return 0


def run_models(args: argparse.Namespace) -> int:
    from clients.errors import ClientError
    from serving.cli import CLIError

    with _client(args) as client:
        try:
            models = client.models()
        except ClientError as exc:
            raise CLIError(str(exc)) from exc
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    print(f"{'MODEL':<16} {'VERSION':>7}  {'STATE':<12} {'LABELS':<16} REASON")
    for m in models:
        labels = ",".join(m.get("labels", [])) or "-"
        print(f"{m['name']:<16} {m['version']:>7}  {m['state']:<12} {labels:<16} "
              f"{m.get('reason', '')}")
    return 0
