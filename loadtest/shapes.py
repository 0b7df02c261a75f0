"""Load shapes: constant users (Locust's own -u/-r), steps or a ramp to find the knee.

The constant-arrival-rate (open-loop) mode is not a user-count shape: it keeps a fixed
number of users that each fire requests on a Poisson schedule without waiting for the
answers (see loadtest/locust_support.py), so a server stall shows up as latency and
dropped arrivals instead of silently lowering the offered load.

Every shape stops by itself at --run-time (``use_common_options``) and reads its
parameters from the command line (--step-users, --step-seconds, --max-users).
"""

from __future__ import annotations

import math

from locust import LoadTestShape


class _OptionShape(LoadTestShape):
    abstract = True
    use_common_options = True  # keep --run-time / -u / -r meaningful

    def _opt(self, name: str, default: float) -> float:
        options = self.runner.environment.parsed_options if self.runner else None
        value = getattr(options, name, None) if options else None
        return float(value) if value not in (None, "") else default

    def _limits(self) -> tuple[float, int, float]:
        run_time = self._opt("run_time", 60.0)
        max_users = int(self._opt("max_users", self._opt("num_users", 64)))
        spawn_rate = self._opt("spawn_rate", 100.0)
        return run_time, max(1, max_users), spawn_rate


class StepShape(_OptionShape):
    """--step-users more users every --step-seconds, up to --max-users, until --run-time."""

    abstract = True

    def tick(self) -> tuple[int, float] | None:
        run_time, max_users, spawn_rate = self._limits()
        elapsed = self.get_run_time()
        if elapsed >= run_time:
            return None
        step_users = max(1, int(self._opt("step_users", 4)))
        step_seconds = max(1.0, self._opt("step_seconds", 10.0))
        users = min(max_users, step_users * (1 + int(elapsed // step_seconds)))
        return users, max(spawn_rate, float(step_users))


class RampShape(_OptionShape):
    """From 1 user linearly up to --max-users over the first 80% of --run-time, then hold."""

    abstract = True

    def tick(self) -> tuple[int, float] | None:
        run_time, max_users, spawn_rate = self._limits()
        elapsed = self.get_run_time()
        if elapsed >= run_time:
            return None
        fraction = min(1.0, elapsed / max(1e-9, 0.8 * run_time))
        return max(1, math.ceil(max_users * fraction)), spawn_rate


SHAPES = {"step": StepShape, "ramp": RampShape}


def shape_class(name: str) -> type[LoadTestShape] | None:
    """A concrete shape class for ``name`` ("constant"/"arrival" need none)."""
    base = SHAPES.get(name)
    if base is None:
        return None
    return type(f"{base.__name__}Selected", (base,), {"abstract": False,
                                                       "__doc__": base.__doc__})
