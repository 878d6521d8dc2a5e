from __future__ import annotations

import http.client
import os
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from gannet.data import download_mnist, find_mnist, load_mnist, mnist_idx, search_dirs
from gannet.errors import GannetError
from tests import tiny_mnist as tiny

ROOT = Path(__file__).resolve().parents[1]
# Real MNIST for tests and CI: ../shared/data beside the checkout (override with GANNET_TEST_DATA).
SHARED_DATA = Path(os.environ.get("GANNET_TEST_DATA", ROOT.parent / "shared" / "data"))
MIRROR_TIMEOUT = 3.0  # seconds a mirror has to answer: a machine without a network waits no longer


def mirrors_that_answer(mirrors: tuple[str, ...], timeout: float = MIRROR_TIMEOUT) -> tuple[str, ...]:
    """The mirrors that start serving MNIST's smallest file within `timeout` seconds, all asked
    at once, each in a thread of its own: a name lookup that hangs holds nothing up."""
    answered = set()

    def ask(mirror: str) -> None:
        try:
            with urllib.request.urlopen(f"{mirror}t10k-labels-idx1-ubyte.gz", timeout=timeout):
                answered.add(mirror)
        except (OSError, ValueError, http.client.HTTPException):  # no network or host, refused, HTTP error, bad URL
            pass

    threads = [threading.Thread(target=ask, args=(mirror,), daemon=True) for mirror in mirrors]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0))
    return tuple(mirror for mirror in mirrors if mirror in answered)


def find_or_download_mnist(mirrors: tuple[str, ...] | None = None, timeout: float = MIRROR_TIMEOUT) -> Path | None:
    """Real MNIST where gannet looks for it ($GANNET_DATA, the per-user cache); missing, it is
    downloaded there by gannet's own downloader from the mirrors that answer within `timeout`
    seconds. None when it is nowhere and no mirror answers (no network) or the download fails."""
    found = find_mnist(None)
    if found is not None:
        return found
    live = mirrors_that_answer(mnist_idx.MNIST_MIRRORS if mirrors is None else mirrors, timeout)
    if not live:
        return None
    try:
        return download_mnist(search_dirs(None)[0], live, progress=False)
    except GannetError:
        return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder holding real MNIST, for the tests whose numbers are MNIST's own:
    $GANNET_TEST_DATA or ../shared/data, else where gannet itself looks ($GANNET_DATA, the
    per-user cache), downloaded there when a mirror answers. Without it, the tests that need it
    are skipped with one line saying how to get it; on CI (CI=true) they fail instead, so that CI
    runs every test."""
    if (SHARED_DATA / "mnist").is_dir():
        return SHARED_DATA
    found = find_or_download_mnist()
    if found is not None:
        return found.parent
    message = (
        f"needs real MNIST, not found and not downloadable here: run `gannet data download mnist` (on a "
        f"machine with a network), or put it in {SHARED_DATA}/mnist, or set GANNET_TEST_DATA to a folder holding mnist/"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def mnist(data_dir):
    """Real MNIST, loaded."""
    return load_mnist(data_dir / "mnist")


@pytest.fixture(scope="session")
def tiny_mnist_files(tmp_path_factory) -> tiny.TinyMnist:
    """A small MNIST in MNIST's file format (tests/tiny_mnist.py), written once a session."""
    return tiny.write(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture
def tiny_dir(tiny_mnist_files, monkeypatch) -> Path:
    """A data folder whose mnist/ gannet takes for MNIST during the test: the data of every test
    that needs MNIST's shape and file format, not its digits. Real MNIST fails its checksums
    meanwhile, so a test takes one or the other (this, or data_dir and mnist)."""
    tiny.accept(monkeypatch, tiny_mnist_files)
    return tiny_mnist_files.root


@pytest.fixture
def tiny_mnist(tiny_dir):
    """The small MNIST, loaded as gannet loads MNIST: train, valid and test splits, labels."""
    return load_mnist(tiny_dir / "mnist")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's real cache or $GANNET_DATA."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GANNET_DATA", raising=False)


# An MNIST run, shrunk: 1,000 training images, so one epoch is 10 steps.
SMALL_MNIST = ["--train-limit", "1000", "--log-every", "5", "--no-progress"]


def timeless(records: list[dict]) -> list[dict]:
    """Metrics records without their wall-clock time: what a repeated or resumed run reproduces."""
    return [{k: v for k, v in m.items() if k != "time/elapsed"} for m in records]


def gannet(*args, capsys=None):
    """Run the CLI in-process; return (exit code, captured output)."""
    from gannet.cli import main

    code = main([str(a) for a in args])
    return code, (capsys.readouterr() if capsys else None)


@pytest.fixture(scope="session")
def _mnist_run(tmp_path_factory, tiny_mnist_files):
    run_dir = tmp_path_factory.mktemp("runs") / "mnist"
    with pytest.MonkeyPatch.context() as monkeypatch:
        tiny.accept(monkeypatch, tiny_mnist_files)
        args = ["--epochs", 2, "--data-dir", tiny_mnist_files.root, "--run-dir", run_dir, *SMALL_MNIST]
        code, _ = gannet("train", "mnist", *args)
    assert code == 0
    return run_dir


@pytest.fixture
def mnist_run(_mnist_run, tiny_dir):
    """`gannet train mnist` on the small MNIST for 2 epochs of 10 steps, trained once a session
    and shared by the tests that read a run; its data folder (config.json's) is taken for
    MNIST during each of them."""
    return _mnist_run
