from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Real MNIST for tests and CI: ../shared/data beside the checkout (override with GANNET_TEST_DATA).
SHARED_DATA = Path(os.environ.get("GANNET_TEST_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder holding real MNIST: $GANNET_TEST_DATA or ../shared/data, else where gannet itself
    looks ($GANNET_DATA, the per-user cache). Without it, the tests that need it are skipped with
    one line saying how to get it; on CI (CI=true) they fail instead, so that CI runs every test."""
    if (SHARED_DATA / "mnist").is_dir():
        return SHARED_DATA
    from gannet.data import find_mnist

    found = find_mnist(None)
    if found is not None:
        return found.parent
    message = (
        f"needs real MNIST: run `gannet data download mnist` (on a machine with a network), "
        f"or put it in {SHARED_DATA}/mnist, or set GANNET_TEST_DATA to a folder holding mnist/"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


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
