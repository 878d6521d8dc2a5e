from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Real MNIST for tests and CI: ../shared/data beside the checkout (override with GANNET_TEST_DATA).
SHARED_DATA = Path(os.environ.get("GANNET_TEST_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert (SHARED_DATA / "mnist").is_dir(), f"tests need real MNIST in {SHARED_DATA}/mnist"
    return SHARED_DATA


@pytest.fixture(scope="session")
def mnist(data_dir):
    from gannet.data import load_mnist

    return load_mnist(data_dir / "mnist")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's real cache or $GANNET_DATA."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GANNET_DATA", raising=False)


# A real MNIST run, shrunk: 1,000 training images, so one epoch is 10 steps.
SMALL_MNIST = ["--train-limit", "1000", "--log-every", "5", "--no-progress"]


def gannet(*args, capsys=None):
    """Run the CLI in-process; return (exit code, captured output)."""
    from gannet.cli import main

    code = main([str(a) for a in args])
    return code, (capsys.readouterr() if capsys else None)


@pytest.fixture(scope="session")
def mnist_run(tmp_path_factory, data_dir):
    """`gannet train mnist` for 2 epochs of 10 steps, shared by the tests that read a run."""
    run_dir = tmp_path_factory.mktemp("runs") / "mnist"
    code, _ = gannet("train", "mnist", "--epochs", 2, "--data-dir", data_dir, "--run-dir", run_dir, *SMALL_MNIST)
    assert code == 0
    return run_dir
