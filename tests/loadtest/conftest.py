"""A served model repository for the load tests: the trained models when the training
fixture provides them, else the tiny ONNX models with the same tensors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures.tiny_models import write_default_models


@pytest.fixture
def loadtest_repository(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    try:
        return Path(request.getfixturevalue("real_model_repository"))
    except (pytest.FixtureLookupError, pytest.skip.Exception):  # no trained models here
        return write_default_models(tmp_path / "models")


# Importing locust monkey-patches the whole process with gevent (sockets, threads, the
# ssl module), which would break asyncio, gRPC and zarr in every other test of the
# session. Tests that need Locust itself live in locust_side/ and run in their own
# pytest process (test_locust_side.py).
LOCUST_SIDE_ENV = "MODELSERVE_LOCUST_SIDE_TESTS"
collect_ignore = [] if os.environ.get(LOCUST_SIDE_ENV) else ["locust_side"]
