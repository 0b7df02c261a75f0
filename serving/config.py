"""All server settings in one place: environment variables prefixed MODELSERVE_, or CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELSERVE_", extra="ignore")

    # Where and what to serve.
    model_repository: Path = Path("models")
    # "latest" | "latest:N" | "specific:1,3"
    version_policy: str = "latest"
    host: str = "0.0.0.0"
    http_port: int = Field(default=8000, ge=0, le=65535)
    grpc_port: int = Field(default=8500, ge=-1, le=65535)  # 0 picks a free port; -1 disables gRPC
    workers: int = Field(default=1, ge=1)
    log_level: str = "info"
    access_log: bool = False  # one log line per request costs throughput; off by default

    # ONNX Runtime.
    providers: Literal["auto", "cpu", "cuda"] = "auto"
    intra_op_threads: int = Field(default=0, ge=0)  # 0 lets ONNX Runtime decide
    inference_threads: int = Field(default=1, ge=1)  # worker threads running sessions per model
    warmup_batch_sizes: list[int] = Field(default_factory=lambda: [1, 8, 32])
    # CUDA only. ONNX Runtime re-plans every cuDNN convolution whenever a session's input
    # shape changes, so each warmed batch size gets its own session (batches are padded
    # up to the next one); and how hard cuDNN searches for kernels when it plans.
    cuda_session_per_batch_size: bool = True
    cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = "HEURISTIC"
    # Run a model's batches on the event loop (no thread hop) when its largest batch took
    # at most this long after warm-up: tiny models (digit, text) then gain ~2x. 0 disables.
    inline_batch_max_ms: float = Field(default=0.5, ge=0)

    # Dynamic batching (global defaults; a manifest's "batching" overrides per model).
    max_batch_size: int = Field(default=32, ge=1)
    max_queue_delay_ms: float = Field(default=2.0, ge=0)
    max_queue_size: int = Field(default=1024, ge=1)  # rows waiting, per model version
    # Per-model overrides, above the manifest's: {"image": {"max_batch_size": 16}} (JSON in env).
    model_batching: dict[str, dict[str, float]] = Field(default_factory=dict)
    request_timeout_s: float = Field(default=30.0, gt=0)

    # Limits.
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    grpc_max_message_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    max_text_chars: int = Field(default=100_000, ge=1)

    # Lifecycle.
    drain_seconds: float = Field(default=5.0, ge=0)  # readiness false before refusing new work
    shutdown_timeout_s: float = Field(default=25.0, ge=0)
    repository_poll_s: float = Field(default=0.0, ge=0)  # 0 disables watching

    # Access control (off unless keys are given).
    api_keys: list[str] = Field(default_factory=list)
    api_keys_file: Path | None = None
    open_health_and_metrics: bool = True
    cors_origins: list[str] = Field(default_factory=list)
