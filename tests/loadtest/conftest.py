"""The served model repository for the load tests: the three trained models (the
session's real_model_repository). There is no stand-in: a build that fails fails these
tests, rather than load-testing tiny models that cost nothing to run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def loadtest_repository(real_model_repository: Path) -> Path:
    return real_model_repository


# Importing locust monkey-patches the whole process with gevent (sockets, threads, the
# ssl module), which would break asyncio, gRPC and zarr in every other test of the
# session. Tests that need Locust itself live in locust_side/ and run in their own
# pytest process (test_locust_side.py).
LOCUST_SIDE_ENV = "MODELSERVE_LOCUST_SIDE_TESTS"
collect_ignore = [] if os.environ.get(LOCUST_SIDE_ENV) else ["locust_side"]
