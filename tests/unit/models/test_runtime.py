"""OrtModel: providers, tensor specs, IOBinding and bucket padding paths, warm-up, threads."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort
import pytest

from serving.models import runtime
from serving.models.runtime import CPU, CUDA, OrtModel
from tests.fixtures.tiny_models import digit_reference, image_model, text_model


def test_cpu_session_reports_specs_and_providers(tiny_digit_path):
    model = OrtModel(tiny_digit_path, providers="cpu", intra_op_threads=1)
    assert model.providers == [CPU]
    assert [(s.name, s.dtype, s.shape) for s in model.inputs] == [("pixels", "float32", [-1, 784])]
    assert [(s.name, s.dtype, s.shape) for s in model.outputs] == [
        ("probabilities", "float32", [-1, 10])]
    assert model.use_io_binding is False


def test_specs_of_int_and_4d_inputs(tiny_model_file):
    text = OrtModel(tiny_model_file(text_model(), "t.onnx"), providers="cpu")
    image = OrtModel(tiny_model_file(image_model(), "i.onnx"), providers="cpu")
    assert (text.inputs[0].dtype, text.inputs[0].shape) == ("int32", [-1, 100])
    assert image.inputs[0].shape == [-1, 150, 150, 3]


def test_provider_choice_without_cuda(monkeypatch, caplog):
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CPU])
    assert runtime.resolve_providers("auto") == [CPU]
    with caplog.at_level(logging.WARNING, logger="serving.models.runtime"):
        assert runtime.resolve_providers("cuda") == [CPU]
    assert "CUDA was requested" in caplog.text


def test_provider_choice_with_cuda_available(monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    assert runtime.resolve_providers("auto") == [CUDA, CPU]
    assert runtime.resolve_providers("cuda") == [CUDA, CPU]
    assert runtime.resolve_providers("cpu") == [CPU]


@pytest.mark.gpu
@pytest.mark.skipif(CUDA not in ort.get_available_providers(),
                    reason="needs a CUDA device and onnxruntime-gpu: this onnxruntime offers "
                           "no CUDAExecutionProvider")
def test_cuda_requested_reports_what_it_got(tiny_digit_path):
    model = OrtModel(tiny_digit_path, providers="cuda")
    assert model.providers[-1] == CPU  # CUDA first when a device exists, CPU always there
    assert model.use_io_binding == (CUDA in model.providers)


def test_run_matches_numpy(tiny_digit_path):
    model = OrtModel(tiny_digit_path, providers="cpu")
    x = np.random.default_rng(0).random((5, 784), dtype=np.float32)
    out = model.run({"pixels": x})
    np.testing.assert_allclose(out["probabilities"], digit_reference(x), rtol=1e-5, atol=1e-6)


def test_io_binding_path_gives_the_same_results(tiny_digit_path):
    plain = OrtModel(tiny_digit_path, providers="cpu")
    bound = OrtModel(tiny_digit_path, providers="cpu", use_io_binding=True)
    x = np.random.default_rng(1).random((7, 784), dtype=np.float32)
    a, b = plain.run({"pixels": x}), bound.run({"pixels": x})
    assert b["probabilities"].shape == (7, 10)
    np.testing.assert_array_equal(a["probabilities"], b["probabilities"])
    # Non-contiguous input (a column slice view) is bound correctly too.
    wide = np.random.default_rng(2).random((3, 1568), dtype=np.float32)[:, ::2]
    np.testing.assert_allclose(bound.run({"pixels": wide})["probabilities"],
                               digit_reference(wide), rtol=1e-5, atol=1e-6)


def test_bucket_padding_pads_and_trims(tiny_digit_path):
    model = OrtModel(tiny_digit_path, providers="cpu", use_io_binding=True,
                     batch_buckets=[4, 8])
    x = np.random.default_rng(3).random((3, 784), dtype=np.float32)
    out = model.run({"pixels": x})["probabilities"]
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out, digit_reference(x), rtol=1e-5, atol=1e-6)
    assert model.run({"pixels": np.zeros((9, 784), np.float32)})["probabilities"].shape == (9, 10)
    assert model._bucket_for(5) == 8 and model._bucket_for(9) is None


def test_warmup_runs_each_size_and_example_feeds_have_the_right_dtype(tiny_model_file):
    model = OrtModel(tiny_model_file(text_model()), providers="cpu")
    timings = model.warmup([8, 1, 8, 2])
    assert sorted(timings) == [1, 2, 8]
    feeds = model.example_feeds(4)
    assert feeds["tokens"].dtype == np.int32 and feeds["tokens"].shape == (4, 100)
    assert model.batch_buckets == []  # CPU: no padding unless asked


def test_run_is_thread_safe(tiny_digit_path):
    model = OrtModel(tiny_digit_path, providers="cpu", intra_op_threads=1)
    rng = np.random.default_rng(4)
    inputs = [rng.random((1 + i % 4, 784), dtype=np.float32) for i in range(200)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        outputs = list(pool.map(lambda x: model.run({"pixels": x}), inputs))
    for x, out in zip(inputs, outputs, strict=True):
        np.testing.assert_allclose(out["probabilities"], digit_reference(x), rtol=1e-5,
                                   atol=1e-6)


def test_corrupt_file_raises(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"not an onnx model")
    with pytest.raises(Exception, match=r"(?i)protobuf|parse|load"):
        OrtModel(path, providers="cpu")


def test_cuda_gets_its_conv_search_option_and_cpu_none():
    assert runtime.provider_options([CUDA, CPU], "HEURISTIC") == [
        (CUDA, {"cudnn_conv_algo_search": "HEURISTIC"}), CPU]
    assert runtime.provider_options([CPU], "EXHAUSTIVE") == [CPU]


def test_a_session_per_batch_size_each_running_its_own_size(tiny_digit_path, monkeypatch):
    model = OrtModel(tiny_digit_path, providers="cpu", use_io_binding=True,
                     batch_buckets=[4, 8], session_per_bucket=True)
    model.warmup([4, 8])
    assert model._bucket_sessions[4] is model.session  # the smallest keeps the first
    assert model._bucket_sessions[8] is not model.session
    shapes: dict[int, set[int]] = {4: set(), 8: set()}
    for size, session in model._bucket_sessions.items():
        real = session.io_binding

        def recording(real=real, size=size):
            binding = real()
            bind = binding.bind_ortvalue_input
            binding.bind_ortvalue_input = lambda name, value: (
                shapes[size].add(value.shape()[0]), bind(name, value))[1]
            return binding

        monkeypatch.setattr(session, "io_binding", recording, raising=False)
    rng = np.random.default_rng(5)
    for rows in (1, 3, 4, 5, 8, 2):
        x = rng.random((rows, 784), dtype=np.float32)
        np.testing.assert_allclose(model.run({"pixels": x})["probabilities"],
                                   digit_reference(x), rtol=1e-5, atol=1e-6)
    # Every batch was padded to a bucket and ran on that bucket's session only.
    assert shapes == {4: {4}, 8: {8}}
    # Larger than every bucket: a session of its own, the others keep their one shape.
    x = rng.random((11, 784), dtype=np.float32)
    np.testing.assert_allclose(model.run({"pixels": x})["probabilities"], digit_reference(x),
                               rtol=1e-5, atol=1e-6)
    assert sorted(model._bucket_sessions) == [4, 8, 11] and shapes == {4: {4}, 8: {8}}


def test_one_session_unless_asked_on_cpu(tiny_digit_path):
    model = OrtModel(tiny_digit_path, providers="cpu")
    model.warmup([1, 4])
    assert model.session_per_bucket is False and model._bucket_sessions == {}
