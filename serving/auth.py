"""API keys shared by REST and gRPC: where they come from and how a key is checked."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from pathlib import Path

from serving.config import Settings


def load_api_keys(settings: Settings) -> list[bytes]:
    """Keys from settings and from a mounted secret file (one per line, '#' comments)."""
    keys = [k for k in settings.api_keys if k]
    if settings.api_keys_file is not None:
        lines = Path(settings.api_keys_file).read_text(encoding="utf-8").splitlines()
        keys += [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]
    return [k.encode() for k in keys]


def key_allowed(given: bytes | None, keys: Sequence[bytes]) -> bool:
    """Constant-time comparison against every key (no early exit reveals which matched)."""
    if not given:
        return False
    ok = False
    for known in keys:
        ok |= hmac.compare_digest(known, given)
    return ok
