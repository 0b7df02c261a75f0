"""Which version answers a request, and shadow traffic to a candidate version.

``Router.resolve`` turns what a request names into a version: a version as it is; a
label through the model's labels.json (serving/models/labels.py); neither: a weighted
choice between the labels of its ``traffic`` (sticky per routing key: the key's hash
picks the same place on the same weights every time, so one user sees one version),
or the latest version when the file sets no traffic.

``Router.mirror`` is called by the dataplane once the primary version has answered: a
``share`` of the requests the shadow's primary version served are run again on the
candidate in a background task, compared (top label per row, largest absolute output
difference, latency difference) and counted in metrics per (primary, candidate) pair.
The caller never waits for it and never sees its errors. Shadow work is shed first:
it is skipped while either version's batch queue is fuller than ``shed_above`` of its
limit, or when ``MAX_SHADOW_IN_FLIGHT`` shadow requests are already running.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from serving import stages as request_stages
from serving.errors import InvalidInput, ServingError
from serving.models.labels import ModelLabels, Rollout, Shadow
from serving.tasks.classification import probabilities

if TYPE_CHECKING:
    from serving.metrics import Metrics
    from serving.models.registry import ModelRegistry, ServedModel

log = logging.getLogger(__name__)

ROUTING_KEY_HEADER = "x-modelserve-routing-key"  # REST header and gRPC metadata key
VERSION_HEADER = "x-modelserve-model-version"  # the version that answered (REST)
LABEL_PARAMETER = "version_label"  # v2 request parameter; also a task endpoint query
KEY_PARAMETER = "routing_key"  # v2 request parameter; also a task endpoint query
MAX_KEY_CHARS = 256
MAX_SHADOW_IN_FLIGHT = 64  # bounds the memory shadow requests hold (their inputs)
DIFF_BUCKETS = (0.0, 1e-6, 1e-4, 1e-3, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0, float("inf"))
DELTA_BUCKETS = (-1.0, -0.1, -0.05, -0.02, -0.01, -0.005, -0.002, -0.001, 0.0, 0.001, 0.002,
                 0.005, 0.01, 0.02, 0.05, 0.1, 1.0, float("inf"))
Feeds = Callable[["ServedModel"], Awaitable[dict[str, np.ndarray]]]


class RolloutMetrics:
    """Routing and shadow series, registered once per Metrics registry."""

    _made: ClassVar[weakref.WeakKeyDictionary[Metrics, RolloutMetrics]] = \
        weakref.WeakKeyDictionary()

    @classmethod
    def of(cls, metrics: Metrics) -> RolloutMetrics:
        made = cls._made.get(metrics)
        if made is None:
            made = cls._made[metrics] = cls(metrics)
        return made

    def __init__(self, metrics: Metrics) -> None:
        ns, reg = "modelserve", metrics.registry
        pair = ["model", "primary_version", "candidate_version"]
        self.routed = Counter("routed_requests", "Requests sent to a version by a label or "
                              "the traffic split", ["model", "version", "label", "via"],
                              namespace=ns, registry=reg)
        self.shadow = Counter("shadow_requests", "Shadow requests by outcome (compared, "
                              "shed, failed, incomparable)", [*pair, "outcome"],
                              namespace=ns, registry=reg)
        self.top_label = Counter("shadow_top_label", "Rows whose top label the candidate "
                                 "agreed or disagreed on", [*pair, "agreement"],
                                 namespace=ns, registry=reg)
        self.difference = Histogram("shadow_output_difference", "Largest absolute output "
                                    "difference per shadow request", pair, namespace=ns,
                                    registry=reg, buckets=DIFF_BUCKETS)
        self.largest = Gauge("shadow_largest_output_difference", "Largest absolute output "
                             "difference seen", pair, namespace=ns, registry=reg,
                             multiprocess_mode="max")
        self.latency_delta = Histogram("shadow_latency_difference_seconds", "Candidate "
                                       "minus primary inference time", pair, namespace=ns,
                                       registry=reg, buckets=DELTA_BUCKETS)
        self.maxima: dict[tuple[str, str, str], float] = {}


def key_unit(name: str, key: str) -> float:
    """A routing key → a number in [0, 1), the same for the same model and key."""
    digest = hashlib.blake2b(f"{name}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def routing_key(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > MAX_KEY_CHARS:
        raise InvalidInput(f"the routing key is longer than {MAX_KEY_CHARS} characters")
    return value


class Router:
    def __init__(self, registry: ModelRegistry, labels: ModelLabels,
                 metrics: Metrics | None) -> None:
        self.registry = registry
        self.labels = labels
        self.metrics = RolloutMetrics.of(metrics) if metrics is not None else None
        self._tasks: set[asyncio.Task[None]] = set()

    # Which version --------------------------------------------------------------
    def resolve(self, name: str, version: int | None, label: str | None = None,
                key: str | None = None) -> int | None:
        """The version a request names, its label's, or the traffic split's (None: latest)."""
        if version is not None:
            if label is not None:
                raise InvalidInput("name a version or a version label, not both")
            return version
        if label is not None:
            chosen = self.labels.resolve(name, label)
            if chosen is not None:
                self._count(name, chosen, label, "label")
            return chosen
        rollout = self.labels.rollout(name)
        if rollout is None or not rollout.traffic:
            return None
        return self._split(name, rollout, routing_key(key))

    def _split(self, name: str, rollout: Rollout, key: str | None) -> int | None:
        # Only labels whose version serves now: a version being retired drops out.
        weighted = [(label, rollout.labels[label], weight) for label, weight in rollout.traffic
                    if weight > 0 and self._serving(name, rollout.labels[label])]
        if not weighted:
            return None
        point = (key_unit(name, key) if key is not None else random.random()) * \
            sum(w for _, _, w in weighted)
        chosen_label, chosen = weighted[-1][:2]  # rounding can leave point at the very end
        for label, version, weight in weighted:
            point -= weight
            if point < 0:
                chosen_label, chosen = label, version
                break
        self._count(name, chosen, chosen_label, "split")
        return chosen

    def _serving(self, name: str, version: int) -> bool:
        try:
            self.registry.get(name, version)
        except ServingError:
            return False
        return True

    def _count(self, name: str, version: int, label: str, via: str) -> None:
        if self.metrics is not None:
            self.metrics.routed.labels(name, str(version), label, via).inc()

    def describe(self, name: str) -> dict[str, object]:
        """The model's labels and roll-out settings in force, for metadata."""
        rollout = self.labels.rollout(name)
        info: dict[str, object] = {}
        if rollout is not None:
            info["version_labels"] = {k: str(v) for k, v in sorted(rollout.labels.items())}
            if rollout.traffic:
                info["traffic"] = dict(rollout.traffic)
            if rollout.shadow is not None:
                shadow = rollout.shadow
                info["shadow"] = {"primary": str(shadow.primary),
                                  "candidate": str(shadow.candidate),
                                  "share": shadow.share, "shed_above": shadow.shed_above}
        if (error := self.labels.error(name)) is not None:
            info["labels_error"] = error
        return info

    # Shadow traffic ---------------------------------------------------------------
    def mirror(self, served: ServedModel, feeds: Feeds, outputs: dict[str, np.ndarray],
               primary_s: float) -> None:
        """Maybe run the request again on the shadow candidate, in the background."""
        rollout = self.labels.rollout(served.name)
        shadow = rollout.shadow if rollout is not None else None
        if shadow is None or served.version != shadow.primary or \
                random.random() >= shadow.share:
            return
        if self._busy(served, shadow):
            self._outcome(served.name, shadow, "shed")
            return
        try:
            candidate = self.registry.get(served.name, shadow.candidate)
        except ServingError:
            self._outcome(served.name, shadow, "failed")
            return
        # Started on the next loop turn: the caller's response is written first.
        # Its own context without the caller's stage record (serving/stages.py): the
        # shadow's batch must not overwrite the stages, span and capture of the caller's.
        context = contextvars.copy_context()
        context.run(request_stages.current.set, None)
        task = asyncio.get_running_loop().create_task(
            self._shadow(served, candidate, shadow, feeds, outputs, primary_s),
            name=f"shadow-{served.name}-{candidate.version}", context=context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _busy(self, served: ServedModel, shadow: Shadow) -> bool:
        if len(self._tasks) >= MAX_SHADOW_IN_FLIGHT:
            return True
        for version in (served.version, shadow.candidate):
            try:
                batcher = self.registry.get(served.name, version).batcher
            except ServingError:
                continue
            if batcher is not None and \
                    batcher.queue_depth > shadow.shed_above * batcher.max_queue_size:
                return True
        return False

    async def _shadow(self, primary: ServedModel, candidate: ServedModel, shadow: Shadow,
                      feeds: Feeds, expected: dict[str, np.ndarray], primary_s: float) -> None:
        start = time.perf_counter()
        try:
            got = await candidate.infer(await feeds(candidate))
        except Exception as exc:  # the candidate's failure is a finding, never the caller's
            log.debug("shadow request to %s/%d failed: %s", candidate.name, candidate.version,
                      exc)
            self._outcome(primary.name, shadow, "failed")
            return
        elapsed = time.perf_counter() - start
        comparison = compare(primary, expected, got)
        if comparison is None:
            self._outcome(primary.name, shadow, "incomparable")
            return
        agree, disagree, difference = comparison
        self._outcome(primary.name, shadow, "compared")
        if self.metrics is not None:
            pair = (primary.name, str(shadow.primary), str(shadow.candidate))
            self.metrics.top_label.labels(*pair, "agree").inc(agree)
            self.metrics.top_label.labels(*pair, "disagree").inc(disagree)
            self.metrics.difference.labels(*pair).observe(difference)
            if difference > self.metrics.maxima.get(pair, -1.0):  # a max: only ever raised
                self.metrics.maxima[pair] = difference
                self.metrics.largest.labels(*pair).set(difference)
            self.metrics.latency_delta.labels(*pair).observe(elapsed - primary_s)

    def _outcome(self, name: str, shadow: Shadow, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.shadow.labels(name, str(shadow.primary), str(shadow.candidate),
                                       outcome).inc()


def top_labels(served: ServedModel, outputs: dict[str, np.ndarray]) -> np.ndarray:
    """Per row, the index of the top class: a task model's probabilities, else the first
    output flattened per row."""
    manifest = served.manifest
    if manifest.postprocessing is not None:
        probs = probabilities(manifest, outputs[manifest.postprocessing.output])
    else:
        first = outputs[manifest.outputs[0].name]
        probs = first.reshape(first.shape[0], -1) if first.ndim else first.reshape(1, 1)
    return np.asarray(probs).argmax(axis=-1)


def compare(primary: ServedModel, expected: dict[str, np.ndarray],
            got: dict[str, np.ndarray]) -> tuple[int, int, float] | None:
    """(rows agreeing on the top label, rows disagreeing, largest absolute difference over
    all outputs), or None when the outputs' names or shapes differ."""
    if set(expected) != set(got) or any(expected[k].shape != got[k].shape for k in expected):
        return None
    difference = 0.0
    for name, array in expected.items():
        if array.dtype.kind in "fiub" and array.size:
            delta = np.abs(array.astype(np.float64) - got[name].astype(np.float64))
            difference = max(difference, float(np.nanmax(delta)))
        elif array.dtype.kind == "O" and not np.array_equal(array, got[name]):
            difference = float("inf")
    try:
        mine, theirs = top_labels(primary, expected), top_labels(primary, got)
    except (KeyError, ValueError, IndexError):
        return None
    agree = int((mine == theirs).sum())
    return agree, int(mine.size) - agree, difference
