"""Shared fixtures: every test gets its own data folder; the real default model is loaded once."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from desktop.engine import Engine, LoadOptions, SamplingParams
from desktop.modelfile import default_model_path

GREEDY = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=48)
TEST_CONTEXT = 2048
TEST_THREADS = 2
BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench"
"""The project's shared benchmark data, beside the clone; tests that read it are skipped where it is absent."""


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """NIGHTSCHOOL_HOME moves all data into the test's own folder."""
    folder = tmp_path / "home"
    monkeypatch.setenv("NIGHTSCHOOL_HOME", str(folder))
    return folder


@pytest.fixture(scope="session")
def model_path():
    return default_model_path()


@pytest.fixture(scope="session")
def engine(model_path):
    """The real SmolLM2-135M Q4_1 through llama.cpp, shared by the tests that only read from it."""
    loaded = Engine(LoadOptions(model_path=model_path, n_ctx=TEST_CONTEXT, n_threads=TEST_THREADS))
    yield loaded
    loaded.close()
