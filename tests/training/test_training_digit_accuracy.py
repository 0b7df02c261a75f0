"""The digit model at its defaults reaches the issue's bar on the real MNIST test set."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_digit_defaults_reach_098_on_mnist_test() -> None:
    from training.config import TrainConfig
    from training.train import train

    result = train("digit", TrainConfig(verbose=0))
    assert result.metrics["test_items"] == 10_000 and result.metrics["train_items"] == 60_000
    assert result.metrics["test_accuracy"] >= 0.98
    # and clearly above the pixel logistic regression fitted on the same split
    assert result.metrics["test_accuracy"] > result.metrics["baseline"]["test_accuracy"] + 0.05
