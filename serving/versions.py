"""A model version as a request names it (REST paths, v2 REST and gRPC, TF Serving's
ModelSpec). Labels are resolved by serving/routing.py from each model's labels.json.

Versions are positive integers that fit TensorFlow Serving's int64; anything else,
a version thousands of digits long included, is the client's mistake (400 /
INVALID_ARGUMENT), echoed back shortened.
"""

from __future__ import annotations

from serving.errors import InvalidInput

MAX_VERSION = 2**63 - 1
_MAX_DIGITS = len(str(MAX_VERSION))
_ECHO_CHARS = 24
LATEST = "latest"


def parse_version(value: str | None) -> int | None:
    """'' or None: the latest version; else a positive integer up to 2**63 - 1."""
    if value is None or value == "":
        return None
    # isascii: str.isdigit() also accepts digits such as "²" that int() refuses; the
    # length first: int() of thousands of digits is slow, and refused past 4300.
    if (len(value) > _MAX_DIGITS or not (value.isascii() and value.isdigit())
            or not 1 <= int(value) <= MAX_VERSION):
        shown = value if len(value) <= _ECHO_CHARS else f"{value[:_ECHO_CHARS]}..."
        raise InvalidInput(f"version must be a positive integer up to {MAX_VERSION}, "
                           f"got {shown!r}")
    return int(value)


def version_number(value: int) -> int:
    """A version given as a number (TF Serving's ModelSpec.version): positive."""
    if not 1 <= value <= MAX_VERSION:
        raise InvalidInput(f"version must be a positive integer up to {MAX_VERSION}, "
                           f"got {value}")
    return value

