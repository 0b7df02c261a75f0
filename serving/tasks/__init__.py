"""Tasks as plug-ins: each task is one module, registered here by one line.

A model's manifest names its task; the task says how its items arrive over each
protocol, decode, and become predictions (base.py has the contract). Models without a
task are generic tensor models, served over the tensor protocols only. A manifest
naming a task that is not registered fails that version's load, with the reason.
"""

from __future__ import annotations

from serving.models.manifest import Manifest
from serving.tasks.base import TASKS, Feature, Payload, Prediction, Task, TaskResult
from serving.tasks.digit import DigitTask
from serving.tasks.image import ImageTask
from serving.tasks.text import TextTask

__all__ = ["TASKS", "Feature", "Payload", "Prediction", "Task", "TaskResult", "task_of"]

TASKS.register(DigitTask())
TASKS.register(ImageTask())
TASKS.register(TextTask())


def task_of(manifest: Manifest) -> Task | None:
    """The manifest's task, checked against it (ValueError: unknown, or unfit); None for a
    generic model."""
    if manifest.task is None:
        return None
    task = TASKS.get(manifest.task)
    task.check(manifest)
    return task
