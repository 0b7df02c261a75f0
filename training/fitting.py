"""What every trainer shares: seeding, the learning-rate schedule, Keras' progress
output, one fit + test evaluation, and the per-epoch history kept with the run."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)
WARMUP_FRACTION = 0.05  # of all steps, at least one; linear from 0 to the peak rate


def seed_everything(seed: int) -> None:
    """Python, numpy and TF seeds; called after data loading so bad data fails before TF loads."""
    import keras

    keras.utils.set_random_seed(seed)


def warmup_cosine(peak: float, total_steps: int) -> Any:
    """Linear warm-up to ``peak``, then cosine decay to zero at the last step.

    The warm-up keeps Adam's first, badly scaled steps small (a model trained from
    random weights otherwise starts by knocking its BatchNorm statistics about); the
    decay to zero lets the last steps settle instead of bouncing around a minimum.
    """
    import keras

    warmup = max(1, round(total_steps * WARMUP_FRACTION))
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, total_steps - warmup), warmup_target=peak, warmup_steps=warmup)


def steps_per_epoch(items: int, batch_size: int) -> int:
    return max(1, -(-items // batch_size))


def progress(verbose: Any) -> tuple[int, list[Any]]:
    """Keras' verbose level and callbacks for ``verbose`` (auto, 0, 1 or 2).

    auto: Keras' progress bar on a terminal; elsewhere (a log file, a pipe, a service
    journal) one log line per epoch, since the bar is drawn with carriage returns that a
    log keeps as one long line full of partial updates.
    """
    if verbose != "auto":
        return int(verbose), []
    if sys.stdout.isatty():
        return 1, []
    return 0, [epoch_log()]


def epoch_log() -> Any:
    """A Keras callback logging one INFO line per epoch: its metrics and its seconds.

    Built on call: the Callback base class needs Keras, imported only when training.
    """
    import keras

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            metrics = ", ".join(f"{k} {float(v):.4f}" for k, v in (logs or {}).items()
                                if k != "learning_rate")
            logger.info("epoch %d/%s: %s (%.1f s)", epoch + 1, self.params.get("epochs", "?"),
                        metrics, time.perf_counter() - self.started)

    return EpochLog()


def fit(model: Any, train_data: Any, y_train: Any, *, epochs: int, batch_size: int,
        verbose: Any, callbacks: list[Any] | None = None,
        **kwargs: Any) -> dict[str, list[float]]:
    """model.fit; a tf.data pipeline (y_train None) comes batched and shuffled already."""
    extra = {"shuffle": False} if y_train is None else {"batch_size": batch_size}
    level, progress_callbacks = progress(verbose)
    history = model.fit(train_data, y_train, epochs=epochs, verbose=level,
                        callbacks=[*(callbacks or []), *progress_callbacks], **extra, **kwargs)
    return {name: [round(float(v), 4) for v in values]
            for name, values in history.history.items() if name != "learning_rate"}


def score(model: Any, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, Any]:
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=64, verbose=0)
    return {"test_accuracy": round(float(accuracy), 4), "test_loss": round(float(loss), 4),
            "test_items": len(y_test)}
