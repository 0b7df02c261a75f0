"""The ``modelserve`` command: one entry point, subcommands registered by each package.

Each module listed in COMMAND_MODULES exposes ``register(subparsers)`` and must be
cheap to import: TensorFlow, ONNX Runtime and Locust are imported only inside the
handlers that need them, so ``modelserve serve`` and ``modelserve predict`` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

OWN_PACKAGES = {"training", "serving", "clients", "loadtest"}
# Order is the order of `modelserve --help`.
COMMAND_MODULES = (
    "training.cli",  # train, export, build-models, evaluate
    "training.importing.cli",  # import
    "serving.server_cli",  # serve
    "clients.cli",  # predict, models
    "loadtest.cli",  # loadtest, bench
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelserve", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # A partial install (e.g. clients only) still offers what it has; our own
            # broken imports are not hidden.
            if exc.name and exc.name.split(".")[0] in OWN_PACKAGES and exc.name != module_name:
                raise
            logging.getLogger(__name__).debug("skipping %s: %s", module_name, exc)
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except CLIError as exc:
        print(f"modelserve {args.command}: error: {exc}", file=sys.stderr)
        return 2


class CLIError(Exception):
    """A user-facing failure: printed as one clear line, exit status 2, no traceback."""


if __name__ == "__main__":
    sys.exit(main())
