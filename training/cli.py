"""``modelserve train | export | build-models | evaluate``.

Cheap to import: TensorFlow, tf2onnx and ONNX Runtime load inside the handlers only.
Data and export problems end as one clear line (serving.cli.CLIError), exit status 2.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serving.cli import CLIError

TASKS = ("digit", "text", "image")


def register(subparsers: Any) -> None:
    _add_train(subparsers)
    _add_export(subparsers)
    _add_build(subparsers)
    _add_evaluate(subparsers)


def _verbose(value: str) -> Any:
    return value if value == "auto" else int(value)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="default: digit 128, text 32, image 16")
    p.add_argument("--verbose", type=_verbose, default="auto",
                   help="Keras progress: auto (a bar on a terminal, else a line per epoch), "
                        "0 (silent), 1 (bar), 2 (a line per epoch)")
    p.add_argument("--image-data-dir", type=Path, default=None,
                   help="image folder: train/<class>/ and test/<class>/ (or <class>/ only); "
                        "default: two Fashion-MNIST classes written as PNG folders")
    p.add_argument("--weights", default="auto",
                   help="MobileNetV2 weights: auto (imagenet if reachable, else none), "
                        "imagenet, none, or a weights file (default auto)")
    p.add_argument("--image-size", type=int, default=150)
    p.add_argument("--precision", choices=("auto", "float32", "mixed_bfloat16"), default="auto",
                   help="image training: auto (bfloat16 only on CPUs with AMX-BF16), float32, "
                        "mixed_bfloat16; the exported model is float32 either way")


def _add_train(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="train one model into a run directory")
    p.add_argument("model", choices=TASKS, help="which model to train")
    p.add_argument("--out", type=Path, required=True, help="run directory to create")
    _add_common(p)
    p.add_argument("--epochs", type=int, default=None,
                   help="default: digit 10, text at most 20 (early stopping), image 1")
    p.add_argument("--train-limit", type=int, default=None, help="use at most N training items")
    p.add_argument("--test-limit", type=int, default=None, help="use at most N test items")
    p.add_argument("--num-words", type=int, default=10_000, help="text: tokenizer vocabulary")
    p.add_argument("--max-length", type=int, default=100, help="text: tokens per text")
    p.add_argument("--embedding-dim", type=int, default=16, help="text: embedding size")
    p.add_argument("--oov-token", default=None, help="text: out-of-vocabulary token")
    p.add_argument("--corpus", choices=("full", "small"), default="full",
                   help="text: Rotten Tomatoes corpus variant")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="held-out share when the data has no test split")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="Adam's peak rate (warm-up, then cosine decay); default: digit 2e-3, "
                        "text 2e-3, image 2e-3")
    p.add_argument("--validation-fraction", type=float, default=0.1,
                   help="text: share of the training texts held out for early stopping")
    p.add_argument("--patience", type=int, default=5,
                   help="text: epochs without a lower validation loss before stopping")
    p.add_argument("--dropout", type=float, default=0.5,
                   help="text: dropout on the pooled embedding (0 turns it off)")
    p.add_argument("--nb-init-dims", type=int, default=16,
                   help="text: embedding dimensions that start at each word's naive-Bayes "
                        "log-count ratio (0: all random)")
    base = p.add_mutually_exclusive_group()
    base.add_argument("--train-base", dest="train_base", action="store_true", default=None,
                      help="image: train MobileNetV2 too (default when no weights are loaded)")
    base.add_argument("--freeze-base", dest="train_base", action="store_false",
                      help="image: train the head only (default with pretrained weights)")
    p.set_defaults(func=_guarded(_run_train))


def _add_export(subparsers: Any) -> None:
    p = subparsers.add_parser("export", help="convert a run to ONNX, verify it, add a version")
    p.add_argument("run_dir", type=Path, help="a directory written by `modelserve train`")
    p.add_argument("--repository", "--out", dest="repository", type=Path, default=Path("models"))
    p.add_argument("--name", default=None, help="model name (default: the task)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--tolerance", type=float, default=1e-4, help="max |TF - ORT| allowed")
    p.set_defaults(func=_guarded(_run_export))


def _add_build(subparsers: Any) -> None:
    p = subparsers.add_parser("build-models", help="train, export and verify the default models")
    p.add_argument("--out", type=Path, default=Path("models"), help="model repository")
    p.add_argument("--only", default=None, help="comma-separated subset of digit,text,image")
    p.add_argument("--epochs", action="append", default=[], metavar="[MODEL=]N",
                   help="epochs for all models (N) or one (image=2); repeatable")
    _add_common(p)
    p.add_argument("--image-train-limit", type=int, default=None,
                   help="image: training images (default 9000)")
    p.add_argument("--image-test-limit", type=int, default=None,
                   help="image: test images (default 1000)")
    p.add_argument("--quick", action="store_true",
                   help="small subsets and one epoch (tests, CI); real data and sizes")
    p.add_argument("--keep-runs", type=Path, default=None, help="keep run directories here")
    p.add_argument("--no-evaluate", action="store_true",
                   help="skip the ONNX Runtime leaderboard at the end")
    p.set_defaults(func=_guarded(_run_build))


def _add_evaluate(subparsers: Any) -> None:
    p = subparsers.add_parser("evaluate", help="score every version with ONNX Runtime")
    p.add_argument("--repository", "--model-repository", dest="repository", type=Path,
                   default=Path("models"))
    p.add_argument("--model", action="append", default=None, help="only this model; repeatable")
    p.add_argument("--latency-runs", type=int, default=None,
                   help="single-item calls timed for p50 (default 300; image 50)")
    p.set_defaults(func=_guarded(_run_evaluate))


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the user-facing errors of the training side into CLIError."""

    def run(args: argparse.Namespace) -> int:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # keep warnings, drop C++ INFO lines
        from serving.errors import ServingError
        from training.errors import TrainingError

        try:
            return handler(args)
        except (TrainingError, ServingError) as exc:
            raise CLIError(str(exc)) from exc

    return run


def parse_epochs(values: list[str]) -> tuple[int | None, dict[str, int]]:
    """["3", "image=2"] → (3, {"image": 2})."""
    default, per_model = None, {}
    for value in values:
        name, _, number = value.rpartition("=")
        if name and name not in TASKS:
            raise CLIError(f"--epochs {value}: unknown model {name!r} ({', '.join(TASKS)})")
        if not number.isdigit() or int(number) < 1:
            raise CLIError(f"--epochs {value}: expected a positive number of epochs")
        if name:
            per_model[name] = int(number)
        else:
            default = int(number)
    return default, per_model


def _config(args: argparse.Namespace, **overrides: Any) -> Any:
    from training.config import TrainConfig

    common = {"seed": args.seed, "batch_size": args.batch_size, "verbose": args.verbose,
              "image_data_dir": args.image_data_dir, "weights": args.weights,
              "image_size": args.image_size, "precision": args.precision}
    return TrainConfig(**{**common, **overrides})


def _run_train(args: argparse.Namespace) -> int:
    from training.build import preflight
    from training.run import save_run
    from training.train import train

    config = _config(args, epochs=args.epochs, train_limit=args.train_limit,
                     test_limit=args.test_limit, num_words=args.num_words,
                     max_length=args.max_length, embedding_dim=args.embedding_dim,
                     oov_token=args.oov_token, corpus=args.corpus,
                     test_fraction=args.test_fraction, learning_rate=args.learning_rate,
                     validation_fraction=args.validation_fraction, patience=args.patience,
                     dropout=args.dropout, nb_init_dims=args.nb_init_dims,
                     train_base=args.train_base)
    if args.out.exists() and any(args.out.iterdir()):
        raise CLIError(f"run directory {args.out} exists and is not empty")
    preflight([args.model], config)
    result = train(args.model, config)
    save_run(result, config, args.out)
    print(f"{args.model}: test accuracy {result.metrics['test_accuracy']} -> {args.out}")
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from training.export import export_run

    target = export_run(args.run_dir, args.repository, name=args.name, opset=args.opset,
                        tolerance=args.tolerance)
    print(f"exported {target}")
    return 0


def _run_build(args: argparse.Namespace) -> int:
    from training.build import build_models
    from training.evaluate import evaluate_repository, format_leaderboard

    default_epochs, per_model = parse_epochs(args.epochs)
    config = _config(args, epochs=default_epochs, train_limit=None, test_limit=None)
    only = [t.strip() for t in args.only.split(",") if t.strip()] if args.only else None
    built = build_models(args.out, config, only=only, quick=args.quick, epochs=per_model,
                         keep_runs=args.keep_runs, image_limits=(args.image_train_limit,
                                                                 args.image_test_limit))
    for version_dir in built:
        print(f"built {version_dir}")
    if not args.no_evaluate:
        names = sorted({p.parent.name for p in built})
        print(format_leaderboard(evaluate_repository(args.out, names)))
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate_repository, format_leaderboard

    if not args.repository.is_dir():
        raise CLIError(f"model repository not found: {args.repository}")
    rows = evaluate_repository(args.repository, args.model, args.latency_runs)
    if not rows:
        raise CLIError(f"no model versions in {args.repository}")
    print(format_leaderboard(rows))
    return 1 if any("error" in row for row in rows) else 0
