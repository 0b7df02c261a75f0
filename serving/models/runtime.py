"""An ONNX model in ONNX Runtime: providers, tensor specs, thread-safe run, warm-up.

``OrtModel.run`` is called from executor threads; ``InferenceSession.run`` releases
the GIL and is safe to call concurrently. On CUDA the inputs are bound with
IOBinding (one host-to-device copy per input, outputs copied back once), a batch is
padded up to the next warmed batch size, and each of those sizes gets a session of
its own. ONNX Runtime's CUDA convolution keeps the cuDNN plan of the *last* input
shape only and rebuilds every plan of the model when the shape changes (0.3-0.8 s
for the image model on an H200 with the default exhaustive search); a session that
only ever sees one shape plans once, at warm-up. All of these paths run on the CPU
provider too, which is how the tests cover them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from serving.models.manifest import TensorSpec

log = logging.getLogger(__name__)

ProviderChoice = Literal["auto", "cpu", "cuda"]
# ONNX Runtime's cudnn_conv_algo_search: how hard cuDNN looks for the fastest kernels
# when a convolution is planned. HEURISTIC plans in milliseconds; EXHAUSTIVE benchmarks.
ConvAlgoSearch = Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"]
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

# ONNX Runtime type strings -> numpy dtype names used in manifests.
_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(int16)": "int16", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(uint8)": "uint8", "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32", "tensor(uint64)": "uint64", "tensor(bool)": "bool",
    "tensor(string)": "object",
}


def resolve_providers(choice: ProviderChoice) -> list[str]:
    """The provider list to ask for; CPU is always the last resort."""
    available = ort.get_available_providers()
    if choice == "cpu":
        return [CPU]
    if CUDA in available:
        _preload_cuda_libraries()
        return [CUDA, CPU]
    if choice == "cuda":
        log.warning("CUDA was requested but this onnxruntime build offers only %s; using CPU",
                    ", ".join(available))
    return [CPU]


_cuda_preloaded = False


def provider_options(providers: list[str], conv_algo_search: ConvAlgoSearch) -> list[Any]:
    """``providers`` as InferenceSession takes them, CUDA's with its options."""
    return [(name, {"cudnn_conv_algo_search": conv_algo_search}) if name == CUDA else name
            for name in providers]


def _preload_cuda_libraries() -> None:
    """Load CUDA/cuDNN from the nvidia-* pip packages when they are installed there.

    onnxruntime-gpu installed with its ``cuda,cudnn`` extras finds its libraries only
    through this call (or LD_LIBRARY_PATH); a system CUDA needs neither.
    """
    global _cuda_preloaded
    if _cuda_preloaded or not hasattr(ort, "preload_dlls"):
        return
    _cuda_preloaded = True
    try:
        ort.preload_dlls()
    except Exception as exc:  # a missing package is normal with a system CUDA
        log.debug("onnxruntime.preload_dlls: %s", exc)


def _spec(node: Any) -> TensorSpec:
    dtype = _ORT_TYPES.get(node.type)
    if dtype is None:
        raise ValueError(f"tensor {node.name!r} has unsupported type {node.type}")
    # Symbolic or unknown dimensions are dynamic (-1).
    shape = [d if isinstance(d, int) and d > 0 else -1 for d in node.shape]
    # model_construct: a scalar (rank 0) output is reported as is, not rejected.
    return TensorSpec.model_construct(name=node.name, dtype=dtype, shape=shape)


class OrtModel:
    """An ONNX model loaded into an InferenceSession.

    ``use_io_binding``: None binds through IOBinding exactly when CUDA was obtained.
    ``batch_buckets``: batch sizes to pad up to (zeros; the extra rows are dropped);
    None pads only on CUDA, to the warmed sizes.
    ``session_per_bucket``: one session per warmed batch size, so that none of them
    sees a second input shape; None does so exactly when CUDA was obtained.
    """

    def __init__(self, path: Path | str, *, providers: ProviderChoice = "auto",
                 intra_op_threads: int = 0, use_io_binding: bool | None = None,
                 batch_buckets: Sequence[int] | None = None,
                 allow_spinning: bool = False,
                 conv_algo_search: ConvAlgoSearch = "HEURISTIC",
                 session_per_bucket: bool | None = None) -> None:
        self.path = Path(path)
        self._options = ort.SessionOptions()
        options = self._options
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle intra-op threads must not spin: the event loop (HTTP, gRPC, inline tiny
        # models) shares these cores, and spinning cut its throughput by more than half.
        options.add_session_config_entry("session.intra_op.allow_spinning",
                                         "1" if allow_spinning else "0")
        asked = resolve_providers(providers)
        self._providers_asked = provider_options(asked, conv_algo_search)
        self.session = self._new_session()
        self.providers: list[str] = list(self.session.get_providers())
        self.on_cuda = CUDA in self.providers
        if CUDA in asked and not self.on_cuda:
            log.warning("%s: CUDA was requested but the session runs on %s", self.path,
                        self.providers)
        self.inputs = [_spec(node) for node in self.session.get_inputs()]
        self.outputs = [_spec(node) for node in self.session.get_outputs()]
        # Whether the first dim of every tensor is a dynamic batch (the manifest may say
        # otherwise; the served model sets it from the manifest).
        self.batched = all(s.shape and s.shape[0] == -1 for s in [*self.inputs, *self.outputs])
        self._output_names = [spec.name for spec in self.outputs]
        self.use_io_binding = self.on_cuda if use_io_binding is None else use_io_binding
        self._device_lock = threading.Lock()
        self._explicit_buckets = batch_buckets is not None
        self.batch_buckets: list[int] = sorted(set(batch_buckets or []))
        self.session_per_bucket = (self.on_cuda if session_per_bucket is None
                                   else session_per_bucket)
        # Batch size -> the session that runs batches of exactly that size (warm-up fills it).
        self._bucket_sessions: dict[int, ort.InferenceSession] = {}
        # Input name -> the shape warm-up runs use (dynamic dims given; the batch -1).
        self.warmup_shapes: dict[str, list[int]] = {}
        log.info("loaded %s on %s (io_binding=%s, session per batch size=%s)", self.path,
                 self.providers, self.use_io_binding, self.session_per_bucket)

    def _new_session(self) -> ort.InferenceSession:
        return ort.InferenceSession(str(self.path), sess_options=self._options,
                                    providers=self._providers_asked)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; every output keeps the batch's leading dimension."""
        # An unbatched model's first dims are not rows (they may differ between inputs):
        # it runs as given, never padded, on the session warmed for a batch of 1.
        rows = _rows(feeds) if self.batched else 1
        padded = self._bucket_for(rows) if self.batched else None
        if padded is not None and padded > rows:
            feeds = {k: _pad_rows(v, padded) for k, v in feeds.items()}
        session = self._session_for(padded or rows)
        # One batch at a time on the device: concurrent IOBinding runs on one CUDA
        # session collided (device-wide synchronisation while another thread's stream
        # was busy) and gave nothing back, since the GPU runs one stream anyway.
        with self._device_lock if self.on_cuda else contextlib.nullcontext():
            values = self._run_on(session, feeds)
        outputs = dict(zip(self._output_names, values, strict=True))
        if padded is not None and padded > rows:
            outputs = {k: v[:rows] for k, v in outputs.items()}
        return outputs

    def _session_for(self, size: int) -> ort.InferenceSession:
        session = self._bucket_sessions.get(size)
        if session is not None:
            return session
        if not (self.session_per_bucket and self._bucket_sessions):
            return self.session
        # Larger than every warmed size (the Batcher never forms such a batch): a session
        # of its own, so that no other session ever sees a second shape.
        with self._device_lock:
            session = self._bucket_sessions.get(size)
            if session is None:
                log.warning("%s: a batch of %d rows, larger than every warmed size; opening "
                            "a session for it", self.path, size)
                session = self._bucket_sessions[size] = self._new_session()
        return session

    def _run_on(self, session: ort.InferenceSession,
                feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if not self.use_io_binding:
            return session.run(self._output_names, feeds)
        # A binding per call: IOBinding objects are not shared between threads.
        binding = session.io_binding()
        device = "cuda" if self.on_cuda else "cpu"
        for name, array in feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), device, 0)
            binding.bind_ortvalue_input(name, value)
        for name in self._output_names:
            binding.bind_output(name, device, 0)
        binding.synchronize_inputs()
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return list(binding.copy_outputs_to_cpu())

    def _bucket_for(self, rows: int) -> int | None:
        if not self.batch_buckets or not (self.on_cuda or self._explicit_buckets):
            return None
        for size in self.batch_buckets:
            if size >= rows:
                return size
        return None  # larger than every bucket: run as is

    def example_feeds(self, batch_size: int) -> dict[str, np.ndarray]:
        """Zeros (the text "0" for strings) of each input's dtype and shape: a dynamic first
        dim is the batch, other dynamic dims take ``warmup_shapes`` or 1."""
        feeds = {}
        for spec in self.inputs:
            given = self.warmup_shapes.get(spec.name, spec.shape)
            shape = [batch_size if i == 0 and d == -1 else (1 if d == -1 else d)
                     for i, d in enumerate(given)]
            if spec.dtype == "object":
                feeds[spec.name] = np.full(shape, "0", dtype=object)  # parses as a number
            else:
                feeds[spec.name] = np.zeros(shape, dtype=spec.dtype)
        return feeds

    def warmup(self, batch_sizes: Iterable[int]) -> dict[int, float]:
        """Run each batch size once (allocations, kernel choice); seconds per size.

        With a session per bucket, each size gets its session here (its creation is
        not in the timing); the smallest size keeps the first session.
        """
        sizes = sorted(set(batch_sizes))
        if self.on_cuda and not self._explicit_buckets:
            self.batch_buckets = sizes  # pad to what is warmed
        timings = {}
        for size in sizes:
            if self.session_per_bucket and size not in self._bucket_sessions:
                self._bucket_sessions[size] = (self._new_session() if self._bucket_sessions
                                               else self.session)
            start = time.perf_counter()
            self.run(self.example_feeds(size))
            timings[size] = time.perf_counter() - start
        log.debug("warmed %s: %s", self.path, {k: round(v, 4) for k, v in timings.items()})
        return timings


def _rows(feeds: dict[str, np.ndarray]) -> int:
    sizes = {int(v.shape[0]) for v in feeds.values() if v.ndim > 0}
    if len(sizes) != 1:
        raise ValueError(f"inputs disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()


def _pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    padded = np.zeros((rows, *array.shape[1:]), dtype=array.dtype)
    padded[: array.shape[0]] = array
    return padded
