"""Settings: every one documented, as a flag and a variable, the page in step with the code."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from serving import server_cli
from serving.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> Settings:
    parser = argparse.ArgumentParser()
    server_cli.register(parser.add_subparsers())
    return server_cli.settings_from_args(parser.parse_args(["serve", *argv]))


def test_every_setting_has_a_description():
    missing = [name for name, field in Settings.model_fields.items() if not field.description]
    assert missing == []


def test_configuration_page_is_current():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "settings_doc.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"`MODELSERVE_{name.upper()}`" in page


def test_flags_parse_lists_json_and_booleans(tmp_path):
    settings = parse("--model-repository", str(tmp_path), "--api-keys", "a, b",
                     "--warmup-batch-sizes", "1,4", "--no-cuda-session-per-batch-size",
                     "--model-batching", '{"image": {"max_batch_size": 8}}',
                     "--cudnn-conv-algo-search", "EXHAUSTIVE")
    assert settings.api_keys == ["a", "b"] and settings.warmup_batch_sizes == [1, 4]
    assert settings.cuda_session_per_batch_size is False
    assert settings.model_batching == {"image": {"max_batch_size": 8}}
    assert settings.cudnn_conv_algo_search == "EXHAUSTIVE"


def test_flags_win_over_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELSERVE_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("MODELSERVE_WARMUP_BATCH_SIZES", "[2, 4]")
    settings = parse("--model-repository", str(tmp_path), "--max-batch-size", "8")
    assert settings.max_batch_size == 8 and settings.warmup_batch_sizes == [2, 4]


def test_a_bad_value_names_the_setting(tmp_path):
    from serving.cli import CLIError

    with pytest.raises(CLIError, match="max_batch_size"):
        parse("--model-repository", str(tmp_path), "--max-batch-size", "0")
