"""The training CLI: bad input ends with one clear line and exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.images import write_images, write_tree
from training.cli import parse_epochs

# What the `modelserve` console script runs (not `-m serving.cli`, which would load the
# module twice, as __main__ and as serving.cli).
ENTRY = "import sys; from serving.cli import main; sys.exit(main(sys.argv[1:]))"


def modelserve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", ENTRY, *args], capture_output=True,
                          text=True, timeout=300, check=False)


def assert_clear_failure(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def test_subcommands_are_listed_and_import_no_tensorflow() -> None:
    code = ("import sys; from serving.cli import build_parser; build_parser(); "
            "heavy = ('tensorflow', 'onnxruntime', 'tf2onnx', 'keras'); "
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"
    help_text = modelserve("--help").stdout
    for command in ("train", "export", "build-models", "evaluate"):
        assert command in help_text


def test_unknown_model_name() -> None:
    assert_clear_failure(modelserve("train", "cats", "--out", "x"), "invalid choice: 'cats'")
    assert_clear_failure(modelserve("build-models", "--only", "digit,cats", "--out", "x"),
                         "unknown model(s) cats")


def test_missing_data_folder(tmp_path: Path) -> None:
    proc = modelserve("train", "image", "--out", str(tmp_path / "run"),
                      "--image-data-dir", str(tmp_path / "nowhere"))
    assert_clear_failure(proc, "error: image folder not found")
    assert not (tmp_path / "run").exists()


def test_folder_with_one_class(tmp_path: Path) -> None:
    write_images(tmp_path / "data" / "train" / "cats", 4, 90)
    proc = modelserve("build-models", "--out", str(tmp_path / "models"), "--image-data-dir",
                      str(tmp_path / "data"))
    assert_clear_failure(proc, "exactly two class folders", "found 1: cats")
    assert not (tmp_path / "models").exists()  # failed before any training


def test_corrupt_image_files(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "data", {"cats": 60, "dogs": 190})
    (root / "train" / "cats" / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    proc = modelserve("train", "image", "--out", str(tmp_path / "run"), "--image-data-dir",
                      str(root), "--epochs", "1")
    assert_clear_failure(proc, "cannot be read", "truncated.jpg")


def test_export_of_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    assert_clear_failure(modelserve("export", str(tmp_path), "--repository",
                                    str(tmp_path / "m")), "is not a training run")


def test_evaluate_without_repository(tmp_path: Path) -> None:
    assert_clear_failure(modelserve("evaluate", "--repository", str(tmp_path / "none")),
                         "model repository not found")


def test_bad_epochs_flag() -> None:
    assert_clear_failure(modelserve("build-models", "--epochs", "cats=2"), "unknown model")
    assert_clear_failure(modelserve("build-models", "--epochs", "zero"), "positive number")


def test_parse_epochs() -> None:
    assert parse_epochs(["3", "image=1"]) == (3, {"image": 1})
    assert parse_epochs([]) == (None, {})


@pytest.mark.slow
def test_progress_in_a_log_is_one_line_per_epoch(tmp_path: Path) -> None:
    """Output to a pipe (a log file, a journal): no progress bar, one log line per epoch."""
    proc = modelserve("train", "digit", "--out", str(tmp_path / "run"), "--train-limit", "2000",
                      "--test-limit", "200", "--epochs", "2")
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    assert "\r" not in output and "\b" not in output
    epochs = [line for line in output.splitlines() if " epoch " in line]
    assert len(epochs) == 2, output
    assert "epoch 1/2: " in epochs[0] and "epoch 2/2: " in epochs[1]
    assert all("accuracy" in line and "loss" in line for line in epochs)
    assert "digit: test accuracy" in proc.stdout


def test_evaluate_skips_generic_models_with_a_clear_line(tmp_path: Path) -> None:
    from tests.fixtures.generic_models import (
        multi_io_model,
        write_bare_version,
        write_generic_version,
    )

    write_generic_version(tmp_path, "ranker", 1, multi_io_model())
    write_bare_version(tmp_path, "detector", 1, multi_io_model())
    proc = modelserve("evaluate", "--repository", str(tmp_path))
    assert proc.returncode == 0, proc.stderr  # skipping is not failing
    lines = proc.stdout.splitlines()
    assert any(line.split()[:3] == ["ranker", "1", "skipped:"] and "generic model (no task)"
               in line for line in lines), proc.stdout
    assert any(line.split()[:3] == ["detector", "1", "skipped:"] and "bare model.onnx" in line
               for line in lines), proc.stdout
    assert "not evaluated" not in proc.stdout and "image folder" not in proc.stdout
