"""Where things run: the process layout, the engines' devices, the models on each device.

- ``layout`` auto: the engine layout when this ONNX Runtime build offers CUDA and the
  providers setting does not say cpu (one process per device forms the batches a GPU
  needs); else per-worker (on the CPU a hop costs more than it gives).
- One engine per entry of ``engine_devices``; by default one per visible NVIDIA GPU
  (CUDA_VISIBLE_DEVICES when set, else the driver's list), or a single engine without
  a GPU. Each engine process sees only its device (CUDA_VISIBLE_DEVICES set to it).
- ``model_placement`` names the devices a model loads on; a model not named loads on
  every engine (front ends spread its requests over them).
"""

from __future__ import annotations

import os
from pathlib import Path

from serving.config import Settings

CPU_DEVICE = "cpu"
_NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # one folder per GPU the driver sees


def resolve_layout(settings: Settings) -> str:
    """"per-worker" or "engine"."""
    if settings.layout != "auto":
        return settings.layout
    if settings.providers == "cpu":
        return "per-worker"
    import onnxruntime as ort

    return "engine" if "CUDAExecutionProvider" in ort.get_available_providers() else \
        "per-worker"


def runs_engines(settings: Settings) -> bool:
    """Whether this server starts engines of its own: the engine layout, unless
    ``engine_addresses`` names running ones (then its workers are their front ends)."""
    return resolve_layout(settings) == "engine" and not settings.engine_addresses


def engine_devices(settings: Settings) -> list[str]:
    """The device of each engine, in order."""
    if settings.engine_devices:
        return list(settings.engine_devices)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if settings.providers == "cpu":
        devices = []
    elif visible is not None:
        devices = [d.strip() for d in visible.split(",") if d.strip()]
    elif _NVIDIA_GPUS.is_dir():
        devices = [str(i) for i in range(len(list(_NVIDIA_GPUS.iterdir())))]
    else:
        devices = []
    return devices or [CPU_DEVICE]


def places(settings: Settings, model: str, device: str) -> bool:
    """Whether the engine on ``device`` loads ``model``."""
    chosen = settings.model_placement.get(model)
    return chosen is None or device in chosen


def device_environment(device: str) -> dict[str, str]:
    """What an engine process's environment says about its device."""
    return {} if device == CPU_DEVICE else {"CUDA_VISIBLE_DEVICES": device}
