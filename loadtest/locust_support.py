"""Locust plumbing shared by the users: command-line options, the weighted mix, open loop.

Options (also settable as LOCUST_<NAME> environment variables):
  --mix digit=4,text=3,image=2,tfserving=1,v2=1,grpc=1   user weights; 0 drops a user
  --grpc-target 127.0.0.1:8500   --model-repository models/ (for the text tokenizer)
  --arrival-rate R   requests/s over all users: open loop (each user fires on a Poisson
                     schedule and does not wait for the answer); 0 = closed loop
  --max-in-flight N  open loop: arrivals beyond N outstanding requests are recorded as
                     failures ("dropped"), so an overloaded server cannot hide
  --step-users, --step-seconds, --max-users   parameters of the step and ramp shapes
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import gevent.pool
import numpy as np
from locust import User
from locust.env import Environment

log = logging.getLogger(__name__)

DEFAULT_MIX = "digit=4,text=3,image=2,tfserving=1,v2=1,grpc=1"


def add_options(parser: Any) -> None:
    group = parser.add_argument_group("modelserve")
    group.add_argument("--mix", default=DEFAULT_MIX, env_var="LOCUST_MIX",
                       help="user weights, e.g. digit=4,text=3,image=2,tfserving=1,v2=1,grpc=1")
    group.add_argument("--grpc-target", default="127.0.0.1:8500", env_var="LOCUST_GRPC_TARGET")
    group.add_argument("--model-repository", default="", env_var="LOCUST_MODEL_REPOSITORY",
                       help="the served repository (the text tokenizer for tensor protocols)")
    group.add_argument("--arrival-rate", type=float, default=0.0, env_var="LOCUST_ARRIVAL_RATE")
    group.add_argument("--max-in-flight", type=int, default=256, env_var="LOCUST_MAX_IN_FLIGHT")
    group.add_argument("--step-users", type=int, default=4, env_var="LOCUST_STEP_USERS")
    group.add_argument("--step-seconds", type=float, default=10.0, env_var="LOCUST_STEP_SECONDS")
    group.add_argument("--max-users", type=int, default=0, env_var="LOCUST_MAX_USERS")


def parse_mix(text: str) -> dict[str, int]:
    """"digit=4,text=3" → {"digit": 4, "text": 3}; raises ValueError on a malformed item."""
    weights: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(f"mix item {item!r} must look like name=weight")
        weights[key.strip()] = int(value)
    return weights


def apply_mix(environment: Environment, classes: Iterable[type[User]]) -> None:
    """Set each user class's weight from --mix and drop the zero-weight ones."""
    options = environment.parsed_options
    weights = parse_mix(options.mix if options is not None else "")
    known = {getattr(c, "key", c.__name__): c for c in classes}
    unknown = set(weights) - set(known)
    if unknown:
        raise ValueError(f"unknown users in --mix: {sorted(unknown)}; known: {sorted(known)}")
    chosen = []
    for key, cls in known.items():
        cls.weight = weights.get(key, 0)
        if cls.weight > 0 and cls in environment.user_classes:
            chosen.append(cls)
    if not chosen:
        raise ValueError("--mix leaves no user with a positive weight")
    environment.user_classes = chosen  # the runner reads them from here
    log.info("user mix: %s", {getattr(c, "key", c.__name__): c.weight for c in chosen})


def open_loop_wait(user: User) -> float:
    """Locust wait_time: 0 in closed loop; Poisson gaps giving --arrival-rate in open loop."""
    rate = OpenLoop.rate(user)
    if rate <= 0:
        return 0.0  # closed loop without think time: each user is one connection
    users = max(1, user.environment.runner.user_count if user.environment.runner else 1)
    return float(np.random.exponential(users / rate))


class OpenLoop:
    """Fires each request in its own greenlet on a Poisson schedule (when a rate is set)."""

    in_flight = 0  # over all users of this process

    @staticmethod
    def rate(user: User) -> float:
        return float(getattr(user.environment.parsed_options, "arrival_rate", 0.0) or 0.0)

    @classmethod
    def fire(cls, user: User, send: Callable[[], None], name: str, request_type: str) -> None:
        if cls.rate(user) <= 0:
            send()
            return
        limit = user.environment.parsed_options.max_in_flight
        if cls.in_flight >= limit:
            user.environment.events.request.fire(
                request_type=request_type, name=name, response_time=0.0, response_length=0,
                exception=RuntimeError(f"dropped: {limit} requests already in flight"),
                context={})
            return
        cls.in_flight += 1
        group = getattr(user, "_open_loop_group", None)
        if group is None:
            group = gevent.pool.Group()
            setattr(user, "_open_loop_group", group)  # noqa: B010 (a User has no such field)
        group.spawn(cls._run, send)

    @staticmethod
    def join(user: User, timeout_s: float = 10.0) -> None:
        """Let this user's requests in flight finish (before closing its channel)."""
        group = getattr(user, "_open_loop_group", None)
        if group is not None:
            group.join(timeout=timeout_s)

    @classmethod
    def _run(cls, send: Callable[[], None]) -> None:
        try:
            send()
        finally:
            cls.in_flight -= 1


def fire_timed(environment: Environment, request_type: str, name: str,
               call: Callable[[], int]) -> None:
    """Run ``call`` (returns the response size) and report it as one Locust request."""
    start = time.perf_counter()
    exception: BaseException | None = None
    length = 0
    try:
        length = call()
    except Exception as exc:  # reported as this request's failure, the user continues
        exception = exc
    environment.events.request.fire(
        request_type=request_type, name=name, response_length=length, exception=exception,
        response_time=(time.perf_counter() - start) * 1000.0, context={})
