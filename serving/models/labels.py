"""Version labels and roll-out settings: ``<repository>/<model>/labels.json``, one per model.

```
{"labels": {"stable": 1, "canary": 2},            # any name -> a version
 "traffic": {"stable": 95, "canary": 5},          # weights of labels, for requests
                                                  #   that name no version or label
 "shadow": {"primary": "stable", "candidate": "canary", "share": 0.2,
            "shed_above": 0.5}}                   # optional; see serving/routing.py
```
Every key but ``labels`` is optional. Like TensorFlow Serving (its ``version_labels``,
without ``--allow_version_labels_for_unavailable_models``), a label may only point at a
version that is loaded and AVAILABLE: a file that breaks this, or is not valid, is
refused as a whole with the reason logged and shown in metadata, and the labels that
were in force keep working. The repository watcher reads the files after each poll and
applies one whose bytes changed (and retries a refused one each poll, since the version
it names may be still loading). ``latest`` is not a label one can assign: it always
means the newest version.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving.errors import ModelNotFound

if TYPE_CHECKING:
    from serving.models.registry import ModelRegistry

log = logging.getLogger(__name__)

LABELS_FILE = "labels.json"
LATEST = "latest"
MAX_FILE_BYTES = 64 * 1024  # a handful of labels; never read a huge file
_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,62}")
_KEYS = {"labels", "traffic", "shadow"}
_SHADOW_KEYS = {"primary", "candidate", "share", "shed_above"}


@dataclass(frozen=True)
class Shadow:
    primary: int  # requests served by this version are mirrored ...
    candidate: int  # ... to this one, after the caller was answered
    share: float  # of the primary's requests, 0-1
    shed_above: float  # skip while a queue is fuller than this share of its limit


@dataclass(frozen=True)
class Rollout:
    """One model's labels.json, validated."""

    labels: dict[str, int] = field(default_factory=dict)
    traffic: tuple[tuple[str, float], ...] = ()  # (label, weight), in file order
    shadow: Shadow | None = None

    def version(self, label: str) -> int | None:
        return self.labels.get(label)

    def labels_of(self, version: int) -> list[str]:
        return sorted(name for name, v in self.labels.items() if v == version)


class LabelsError(ValueError):
    """Why a labels file was refused (shown to operators as it is)."""


def parse(document: Any) -> Rollout:
    """A parsed labels.json → Rollout; LabelsError names the first problem."""
    if not isinstance(document, dict):
        raise LabelsError("the file must hold a JSON object")
    unknown = sorted(set(document) - _KEYS)
    if unknown:
        raise LabelsError(f"unknown keys {unknown}; allowed: {sorted(_KEYS)}")
    labels = _labels(document.get("labels", {}))
    traffic = _traffic(document.get("traffic"), labels)
    shadow = _shadow(document.get("shadow"), labels)
    return Rollout(labels, traffic, shadow)


def _labels(raw: Any) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise LabelsError("'labels' must map label names to versions")
    out = {}
    for name, version in raw.items():
        if not _LABEL.fullmatch(name) or name == LATEST:
            raise LabelsError(f"label {name[:64]!r}: a name is a letter then up to 62 "
                              f"letters, digits, '_', '.' or '-', and not {LATEST!r}")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise LabelsError(f"label {name!r} must point at a positive integer version")
        out[name] = version
    return out


def _traffic(raw: Any, labels: dict[str, int]) -> tuple[tuple[str, float], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw:
        raise LabelsError("'traffic' must map labels to weights")
    out = []
    for name, weight in raw.items():
        if name not in labels:
            raise LabelsError(f"traffic names label {name!r}, which 'labels' does not define")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not \
                0 <= weight < float("inf"):
            raise LabelsError(f"traffic weight of {name!r} must be a number >= 0")
        out.append((name, float(weight)))
    if sum(w for _, w in out) <= 0:
        raise LabelsError("traffic weights must not all be 0")
    return tuple(out)


def _shadow(raw: Any, labels: dict[str, int]) -> Shadow | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise LabelsError("'shadow' must be an object")
    unknown = sorted(set(raw) - _SHADOW_KEYS)
    if unknown:
        raise LabelsError(f"shadow: unknown keys {unknown}; allowed: {sorted(_SHADOW_KEYS)}")
    primary = _version_ref(raw.get("primary"), labels, "primary")
    candidate = _version_ref(raw.get("candidate"), labels, "candidate")
    if primary == candidate:
        raise LabelsError(f"shadow: primary and candidate are both version {primary}")
    share = _fraction(raw.get("share", 1.0), "share")
    shed_above = _fraction(raw.get("shed_above", 0.5), "shed_above")
    return Shadow(primary, candidate, share, shed_above)


def _version_ref(value: Any, labels: dict[str, int], what: str) -> int:
    """A label name or a version number."""
    if isinstance(value, str) and value in labels:
        return labels[value]
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise LabelsError(f"shadow {what} must be a defined label or a version, got {value!r}")


def _fraction(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise LabelsError(f"shadow {what} must be a number from 0 to 1")
    return float(value)


def check_loaded(rollout: Rollout, name: str, available: set[int]) -> None:
    """Refuse labels (and shadow versions) that point at versions not serving now."""
    named = dict(rollout.labels)
    if rollout.shadow is not None:
        named |= {"shadow primary": rollout.shadow.primary,
                  "shadow candidate": rollout.shadow.candidate}
    missing = {what: v for what, v in named.items() if v not in available}
    if missing:
        shown = ", ".join(f"{what} -> {v}" for what, v in sorted(missing.items()))
        loaded = ", ".join(map(str, sorted(available))) or "none"
        raise LabelsError(f"{shown}: not a loaded version of {name!r} (loaded: {loaded})")


def read_bytes(path: Path) -> bytes:
    """The file's bytes, up to the limit (OSError when it cannot be read)."""
    with path.open("rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise LabelsError(f"the file is larger than {MAX_FILE_BYTES} bytes")
    return data


def parse_bytes(data: bytes) -> Rollout:
    """Validate one file's bytes (not yet checked against the loaded versions)."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LabelsError(f"not valid JSON ({exc})") from None
    return parse(document)


class ModelLabels:
    """The labels in force for every model, and why a newer file was refused."""

    def __init__(self, repository: Path) -> None:
        self.repository = repository
        self._rollouts: dict[str, Rollout] = {}
        self._errors: dict[str, str] = {}
        self._read: dict[str, bytes] = {}  # the file each model's state came from

    def rollout(self, name: str) -> Rollout | None:
        return self._rollouts.get(name)

    def error(self, name: str) -> str | None:
        """Why the model's current labels.json is not in force (None: it is, or none)."""
        return self._errors.get(name)

    def labels_of(self, name: str, version: int) -> list[str]:
        rollout = self._rollouts.get(name)
        return rollout.labels_of(version) if rollout is not None else []

    def resolve(self, name: str, label: str) -> int | None:
        """A label → its version; ``latest`` → None (the newest); else 404."""
        if label == LATEST:
            return None
        rollout = self._rollouts.get(name)
        version = rollout.version(label) if rollout is not None else None
        if version is None:
            known = sorted(rollout.labels) if rollout is not None else []
            raise ModelNotFound(f"version label {label[:64]!r} of model {name!r} is not "
                                f"assigned (assigned: {', '.join([*known, LATEST])})")
        return version

    def refresh(self, registry: ModelRegistry) -> None:
        """Apply every model's labels.json that changed (or was refused before)."""
        names = {m.name for m in registry.models()} | set(self._rollouts)
        for name in sorted(names):
            self._refresh_one(registry, name)

    def _refresh_one(self, registry: ModelRegistry, name: str) -> None:
        path = self.repository / name / LABELS_FILE
        if not path.is_file():
            if name in self._rollouts or name in self._errors:
                log.info("model %s: %s removed; no labels", name, LABELS_FILE)
            self._rollouts.pop(name, None)
            self._errors.pop(name, None)
            self._read.pop(name, None)
            return
        # The bytes, not size and mtime: two quick edits of equal size can share an mtime.
        try:
            data = read_bytes(path)
        except (OSError, LabelsError) as exc:
            self._refuse(name, str(exc) if isinstance(exc, LabelsError) else
                         f"cannot be read ({type(exc).__name__})")
            return
        if self._read.get(name) == data and name not in self._errors:
            return
        self._read[name] = data
        available = {m.version for m in registry.models()
                     if m.name == name and m.state == "AVAILABLE"}
        try:
            rollout = parse_bytes(data)
            check_loaded(rollout, name, available)
        except LabelsError as exc:
            self._refuse(name, str(exc))
            return
        self._rollouts[name] = rollout
        self._errors.pop(name, None)
        log.info("model %s: labels %s, traffic %s, shadow %s", name, rollout.labels,
                 dict(rollout.traffic) or "none", rollout.shadow or "none")

    def _refuse(self, name: str, why: str) -> None:
        reason = f"{LABELS_FILE} refused: {why}"
        if self._errors.get(name) != reason:
            log.warning("model %s: %s; the labels in force are kept", name, reason)
        self._errors[name] = reason
