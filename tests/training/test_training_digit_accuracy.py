"""The digit model at its defaults reaches the issue's bar on the real MNIST test set."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_digit_defaults_reach_097_on_mnist_test() -> None:
    from training.config import TrainConfig
    from training.train import train

    result = train("digit", TrainConfig(verbose=0))
    assert result.metrics["test_items"] == 10_000 and result.metrics["train_items"] == 60_000
    assert result.metrics["test_accuracy"] >= 0.97
