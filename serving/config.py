"""All server settings in one place: environment variables prefixed MODELSERVE_, or CLI flags.

Each field's description is its ``--help`` text and its line in docs/configuration.md
(``python scripts/settings_doc.py`` writes that page; a test keeps the two in step).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELSERVE_", extra="ignore")

    # Where and what to serve.
    model_repository: Path = Field(
        default=Path("models"),
        description="model repository folder: NAME/VERSION/model.onnx + manifest.json")
    version_policy: str = Field(
        default="latest",
        description="versions served per model: latest | latest:N | specific:1,3")
    host: str = Field(default="0.0.0.0", description="address the REST and gRPC servers bind")
    http_port: int = Field(default=8000, ge=0, le=65535, description="REST port")
    grpc_port: int = Field(default=8500, ge=-1, le=65535,
                           description="gRPC port (0 picks a free one, -1 disables gRPC)")
    workers: int = Field(default=1, ge=1,
                         description="server processes sharing the ports (one per core is a good "
                                     "start): each with its own sessions, or front ends "
                                     "of the engines in the engine layout")
    # Process layout (docs/architecture.md, Processes): per-worker needs no hop and suits the
    # CPU; on an accelerator the engine forms batches across every front end.
    layout: Literal["auto", "per-worker", "engine"] = Field(
        default="auto",
        description="per-worker: each worker process owns its sessions and batchers; "
                    "engine: one engine process per device owns them and the workers are "
                    "front ends (HTTP, gRPC, decoding) handing it tensors; auto: engine when "
                    "ONNX Runtime offers CUDA and providers is not cpu, else per-worker")
    engine_devices: list[str] = Field(
        default_factory=list,
        description="engine layout: one engine per entry, each seeing only that device "
                    "(CUDA_VISIBLE_DEVICES); empty: one per visible NVIDIA GPU "
                    "(CUDA_VISIBLE_DEVICES when set), or one engine without a GPU")
    model_placement: dict[str, list[str]] = Field(
        default_factory=dict,
        description='engine layout: the engine devices each model is loaded on, as JSON '
                    '{"image": ["0", "1"], "text": ["1"]}; a model not named is loaded on '
                    'every engine')
    engine_arena_bytes: int = Field(
        default=64 * 1024 * 1024, ge=0,
        description="engine layout: shared memory per front end and engine for input "
                    "tensors in flight (reserved at start; 0 or a full arena: tensors travel "
                    "in the control messages instead)")
    engine_addresses: list[str] = Field(
        default_factory=list,
        description="engine layout: ipc:// addresses of running engines for this process to "
                    "use (set by the supervisor for its workers); empty: the process starts "
                    "its own engines")
    log_level: str = Field(default="info", description="debug | info | warning | error")
    # One log line per request costs throughput.
    access_log: bool = Field(default=False, description="log every request")

    # ONNX Runtime.
    providers: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="execution provider: cuda falls back to the CPU (with a warning) when "
                    "CUDA cannot load; auto takes CUDA when the build offers it")
    intra_op_threads: int = Field(
        default=0, ge=0,
        description="ONNX Runtime threads per session (0: ONNX Runtime counts the host's "
                    "cores, so set it to the CPU limit in containers)")
    inference_threads: int = Field(
        default=1, ge=1, description="batches of one model version running at once")
    warmup_batch_sizes: list[int] = Field(
        default_factory=lambda: [1, 8, 32],
        description="batch sizes each model runs before it reports ready (the model's "
                    "maximum batch size is always added); on CUDA batches are padded up to "
                    "the next of these")
    # ONNX Runtime re-plans every cuDNN convolution of a session whenever its input shape
    # changes (0.3-0.8 s for the image model), so on CUDA each warmed size has a session.
    cuda_session_per_batch_size: bool = Field(
        default=True,
        description="CUDA: one session per warm-up batch size, so that no session sees a "
                    "second input shape and cuDNN plans only at warm-up")
    cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = Field(
        default="HEURISTIC",
        description="CUDA: how cuDNN picks convolution kernels when it plans (HEURISTIC: "
                    "same speed as EXHAUSTIVE for the image model on an H200, half the warm-up)")
    # Tiny models (digit, text) gain ~2x from skipping the thread hop.
    inline_batch_max_ms: float = Field(
        default=0.5, ge=0,
        description="run a model's batches on the event loop when its largest batch takes "
                    "at most this long once warm (0 disables)")

    # Dynamic batching: global defaults; a manifest's "batching" overrides them per model.
    max_batch_size: int = Field(default=32, ge=1, description="rows per batch at most")
    max_queue_delay_ms: float = Field(
        default=2.0, ge=0,
        description="how long a batch may wait to fill while the model is busy (an idle "
                    "model runs a request at once)")
    max_queue_size: int = Field(
        default=1024, ge=1,
        description="rows waiting per model version before requests are refused (503)")
    model_batching: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description='per-model batching over the manifest\'s, as JSON: '
                    '{"image": {"max_batch_size": 16}}')
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="deadline of a request, queue and compute (504)")

    # Limits: what one request may ask for (docs/reliability.md sizes them for a 1 GiB pod).
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024,
                                   description="largest REST body (413 above)")
    max_body_bytes_in_flight: int = Field(
        default=64 * 1024 * 1024, ge=1024,
        description="REST request bodies held at once, counted by their declared length "
                    "(a chunked body at max_request_bytes); a request that does not fit is "
                    "answered 503 with Retry-After before its body is read")
    grpc_max_message_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024,
        description="largest gRPC message; with grpc_max_concurrent_rpcs it bounds the "
                    "memory of messages in flight (encoded images fit far more items than "
                    "float tensors)")
    grpc_max_concurrent_rpcs: int = Field(
        default=64, ge=1,
        description="gRPC calls in progress at once; more are answered RESOURCE_EXHAUSTED")
    max_image_pixels: int = Field(
        default=12_582_912, ge=1,
        description="largest declared image size, checked from its header before decoding "
                    "(400 above)")
    max_request_pixels: int = Field(
        default=67_108_864, ge=1,
        description="declared pixels of all the images of one request, checked from their "
                    "headers before any is decoded (413 above)")
    max_text_chars: int = Field(default=100_000, ge=1,
                                description="longest text per item (400 above)")
    decode_threads: int = Field(
        default=0, ge=0,
        description="threads decoding images and texts off the event loop (0: the CPUs "
                    "this process may use, from its affinity and cgroup CPU limit)")
    decode_memory_bytes: int = Field(
        default=128 * 1024 * 1024, ge=1024 * 1024,
        description="memory the images being decoded at once may take, estimated from "
                    "their declared size and format; decodes wait for it, and an image "
                    "that needs more than all of it is refused (413)")

    # Connections (REST; health is answered past max_connections too).
    max_connections: int = Field(
        default=512, ge=1,
        description="open REST connections or requests in progress; past it requests "
                    "other than health are answered 503, and connections past it plus 32 "
                    "are closed at once")
    max_header_bytes: int = Field(
        default=32 * 1024, ge=1024,
        description="request line and headers of one REST request (431 above)")
    header_timeout_s: float = Field(
        default=10.0, gt=0,
        description="seconds a REST client may take to send a request's line and headers, "
                    "counted from connecting or from its first byte (408, then closed)")
    body_timeout_s: float = Field(
        default=30.0, gt=0,
        description="seconds a REST request body may take to arrive after its headers "
                    "(408, then closed)")

    # Lifecycle.
    drain_seconds: float = Field(
        default=5.0, ge=0,
        description="on SIGTERM: seconds of not-ready before new work is refused, so load "
                    "balancers stop sending")
    shutdown_timeout_s: float = Field(
        default=25.0, ge=0, description="on SIGTERM: how long queued work may still finish")
    repository_poll_s: float = Field(
        default=0.0, ge=0,
        description="seconds between scans of the repository for new, changed or removed "
                    "versions (0: no watching)")
    # Kubernetes routes per pod, not per model: a pod that cannot answer for one of its
    # models must leave the Service's endpoints (docs/deployment.md, Readiness).
    strict_readiness: bool = Field(
        default=True,
        description="ready only while every model the server is configured to serve has an "
                    "available version (one loading, failed, or unloaded on request makes it "
                    "not ready); false: ready once the first load finished, whatever failed")
    # Off by default, as in Triton (model control mode NONE): the server binds every
    # address and needs no key unless configured, so an open load/unload would let
    # anyone who reaches the port take models out of service.
    repository_api: bool = Field(
        default=False,
        description="enable the repository management API: load/unload over REST "
                    "(/v2/repository/models/NAME/load|unload) and gRPC (RepositoryModelLoad/"
                    "Unload); off: they answer 403 / PERMISSION_DENIED (the index stays "
                    "readable)")

    # Access control (off unless keys are given; required where require_api_keys says so).
    require_api_keys: bool = Field(
        default=False,
        description="refuse to start (exit status 2) when no API key is configured, so a "
                    "deployment whose key Secret is missing or empty never serves an open "
                    "server; false: running without keys is intended")
    api_keys: list[str] = Field(
        default_factory=list,
        description="API keys accepted as 'Authorization: Bearer' or 'x-api-key' (off when "
                    "empty)")
    api_keys_file: Path | None = Field(default=None,
                                       description="file with one API key per line")
    open_health_and_metrics: bool = Field(
        default=True, description="health and /metrics need no key")
    open_pages: bool = Field(
        default=True,
        description="the playground (/, with its live view) and the API docs (/docs) load "
                    "without a key; the calls they make still need one (the playground asks "
                    "for it)")

    # The playground: try the models in a browser (docs/playground.md).
    playground: bool = Field(default=True, description="serve the playground page at /")
    cors_origins: list[str] = Field(
        default_factory=list, description="allowed CORS origins (CORS off when empty)")

    # Streaming: Triton's bidirectional ModelStreamInfer (serving/grpc/v2_stream.py).
    grpc_stream_max_in_flight: int = Field(
        default=64, ge=1,
        description="requests of one ModelStreamInfer stream computing at once; past it (or "
                    "past grpc_stream_bytes_in_flight) the server stops reading the stream "
                    "until one is answered (gRPC flow control then holds the client back)")
    grpc_stream_bytes_in_flight: int = Field(
        default=256 * 1024, ge=1024,
        description="bytes of the request messages of one ModelStreamInfer stream "
                    "computing at once (a larger request runs alone); a stream holds this "
                    "beyond the one message every gRPC call may hold")

    # The HTTP server under the REST app (docs/benchmarks.md says how it was chosen).
    http_server: Literal["granian", "uvicorn"] = Field(
        default="uvicorn",
        description="granian: a Rust HTTP server (HTTP parsed outside Python); uvicorn: "
                    "uvicorn with httptools and the hot task routes in its protocol")

    # Observability (docs/observability.md): Server-Timing, tracing, request capture.
    server_timing: bool = Field(
        default=True,
        description="add a Server-Timing header to REST inference responses: receive, "
                    "decode, queue, batch (its size), inference, encode and total, in ms")
    otlp_endpoint: str = Field(
        default="",
        description="OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces): one "
                    "span per inference request with a child per stage; empty: tracing off")
    trace_sample_ratio: float = Field(
        default=1.0, ge=0.0, le=1.0,
        description="share of requests traced when the caller sends no sampled traceparent "
                    "(a caller's sampling decision is followed)")
    trace_service_name: str = Field(default="modelserve",
                                    description="service.name of the exported spans")
    capture_path: Path | None = Field(
        default=None,
        description="request capture: JSON lines file of sampled requests and responses "
                    "(rotated; off when unset)")
    capture_rate: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="share of each model's requests captured (capture_model_rates overrides "
                    "it per model)")
    capture_model_rates: dict[str, float] = Field(
        default_factory=dict,
        description='capture rate per model, as JSON: {"digit": 0.01, "image": 0}')
    capture_inputs: Literal["full", "summary", "none"] = Field(
        default="summary",
        description="what the capture keeps of the inputs: full (each array whole up to "
                    "capture_max_array_bytes), summary (dtype, shape, min/max/mean) or none")
    capture_max_array_bytes: int = Field(
        default=64 * 1024, ge=0,
        description="largest input or output array written whole; larger ones are "
                    "summarised")
    capture_max_bytes: int = Field(
        default=64 * 1024 * 1024, ge=64 * 1024,
        description="capture file size at which it rotates; disk use is at most "
                    "(capture_backups + 1) times this")
    capture_backups: int = Field(default=3, ge=0,
                                 description="rotated capture files kept")
    capture_queue_size: int = Field(
        default=1024, ge=1,
        description="captured records waiting for the writer thread; past it records are "
                    "dropped and counted, never waited for")
    capture_queue_bytes: int = Field(
        default=64 * 1024 * 1024, ge=0,
        description="bytes of input and output arrays the records waiting for the writer "
                    "may hold; past it records are dropped and counted")
