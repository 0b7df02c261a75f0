"""Bytes in JSON: base64 strings and TF Serving's ``{"b64": "..."}`` objects.

Shared by the REST routers (TF Serving string tensors) and the task plug-ins (images
sent as base64), so both read base64 the same way. Standard library only.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from serving.errors import InvalidInput


def b64decode(value: Any, what: str = "value") -> bytes:
    """Standard or URL-safe base64 (TF Serving clients send either)."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a base64 string, got {type(value).__name__}")
    try:
        if "-" in value or "_" in value:
            return base64.urlsafe_b64decode(value)
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{what} is not valid base64", detail=str(exc)) from exc


def is_b64(value: Any) -> bool:
    """TF Serving's JSON form of bytes: an object whose only key is "b64"."""
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def b64_bytes(item: Any, what: str) -> bytes:
    """``"<base64>"`` or ``{"b64": "<base64>"}`` → bytes."""
    if is_b64(item):
        item = item["b64"]
    return b64decode(item, what)
