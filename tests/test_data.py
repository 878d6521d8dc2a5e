import gzip
import hashlib
import http.server
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gannet import data
from gannet.errors import GannetError

from . import tiny_mnist
from .conftest import find_or_download_mnist


def test_mnist_is_split_as_in_the_paper(mnist):
    assert mnist.train.shape == (50_000, 784) and mnist.valid.shape == (10_000, 784)
    assert mnist.test.shape == (10_000, 784) and mnist.shape == (1, 28, 28)
    assert mnist.train.dtype == torch.float32
    assert mnist.train.min() == 0 and mnist.train.max() == 1
    assert mnist.labels["train"][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # MNIST's first digits
    assert mnist.labels["test"][:5].tolist() == [7, 2, 1, 0, 4]
    # the pixel content the checksums certify, seen through the split: 255 · mean of the 60,000
    total = mnist.train.double().sum() + mnist.valid.double().sum()
    assert (total * 255 / (60_000 * 784)).item() == pytest.approx(33.318, abs=1e-3)


def test_data_is_looked_for_in_data_dir_then_env_then_cache(tmp_path, monkeypatch, tiny_dir):
    env_dir, cache = tmp_path / "env", data.cache_dir()
    monkeypatch.setenv("GANNET_DATA", str(env_dir))
    assert data.search_dirs(tmp_path / "flag") == [tmp_path / "flag", env_dir, cache]
    shutil.copytree(tiny_dir / "mnist", cache / "mnist")
    assert data.find_mnist(tmp_path / "flag") == cache / "mnist"
    shutil.copytree(tiny_dir / "mnist", env_dir / "mnist")
    assert data.find_mnist(tmp_path / "flag") == env_dir / "mnist"
    assert data.find_mnist(tiny_dir) == tiny_dir / "mnist"


def test_missing_mnist_says_where_it_looked(tmp_path):
    with pytest.raises(GannetError, match=r"not found \(looked in .*nowhere/mnist.*gannet data download"):
        data.mnist(tmp_path / "nowhere", download=False)


def test_truncated_file_is_named(tmp_path, tiny_dir):
    folder = tmp_path / "mnist"
    shutil.copytree(tiny_dir / "mnist", folder)
    name = "t10k-labels-idx1-ubyte.gz"
    whole = (folder / name).read_bytes()
    (folder / name).write_bytes(whole[: len(whole) // 2])
    with pytest.raises(GannetError, match=f"{name} is truncated or corrupt"):
        data.load_mnist(folder)


def test_wrong_content_is_refused_by_checksum(tmp_path, data_dir):
    folder = tmp_path / "mnist"
    shutil.copytree(data_dir / "mnist", folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    (folder / "t10k-labels-idx1-ubyte").write_bytes(b"\0" * 10_008)  # right size, wrong bytes
    with pytest.raises(GannetError, match="expected 10,008 bytes and MD5 27ae3e4e"):
        data.load_mnist(folder)


def test_uncompressed_files_are_accepted(tmp_path, tiny_dir):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in data.MNIST_FILES:
        with gzip.open(tiny_dir / "mnist" / f"{name}.gz") as f:
            (folder / name).write_bytes(f.read())
    assert data.load_mnist(folder).test.shape == (tiny_mnist.TEST, 784)


# --- download against a local HTTP server -----------------------------------------------------


@pytest.fixture
def mirrors(tiny_dir):
    """Four mirrors on loopback: good (the files MNIST's digests name, here the small MNIST's),
    corrupt (garbage), broken (a reply that is not HTTP), dead (nothing listens)."""
    good = {f"/good/{p.name}": p.read_bytes() for p in (tiny_dir / "mnist").glob("*.gz")}
    corrupt = {f"/corrupt/{name}": gzip.compress(b"not mnist") for name in (p.split("/")[-1] for p in good)}
    files = {**good, **corrupt}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/broken/"):
                self.wfile.write(b"not HTTP at all\r\n\r\n")  # http.client: BadStatusLine
                self.close_connection = True
                return
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield {
        "good": f"{base}/good/",
        "corrupt": f"{base}/corrupt/",
        "broken": f"{base}/broken/",
        "dead": f"http://127.0.0.1:{dead_port}/",
    }
    server.shutdown()


def test_download_falls_through_dead_and_corrupt_mirrors(tmp_path, mirrors):
    sources = (mirrors["dead"], mirrors["corrupt"], mirrors["broken"], mirrors["good"])
    folder = data.download_mnist(tmp_path, sources, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.gz" for n in data.MNIST_FILES)
    loaded = data.load_mnist(folder)
    assert loaded.train.shape == (tiny_mnist.TRAIN, 784)
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
        assert hashlib.md5(f.read()).hexdigest() == data.MNIST_FILES["t10k-labels-idx1-ubyte"][0]


def test_failed_download_names_each_mirror_and_leaves_nothing(tmp_path, mirrors):
    with pytest.raises(GannetError) as error:
        data.download_mnist(tmp_path, (mirrors["dead"], mirrors["corrupt"], mirrors["broken"]), progress=False)
    message = str(error.value)
    assert mirrors["broken"] in message  # not HTTP: the next mirror, then this sentence
    assert mirrors["dead"] in message and "refused" in message.lower()
    assert mirrors["corrupt"] in message and "does not hold MNIST" in message
    assert os.listdir(tmp_path / "mnist") == []  # no half-written or temporary file


def test_training_downloads_missing_mnist_into_the_first_data_folder(tmp_path, mirrors, monkeypatch):
    monkeypatch.setattr(data.download_mnist, "__defaults__", ((mirrors["good"],), True))
    loaded = data.mnist(tmp_path / "fresh", download=True, progress=False)
    assert loaded.valid.shape == (tiny_mnist.VALID, 784)
    assert (tmp_path / "fresh" / "mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_a_failed_download_takes_back_the_folders_it_made(tmp_path, mirrors, monkeypatch):
    monkeypatch.setattr(data.download_mnist, "__defaults__", ((mirrors["dead"],), True))
    monkeypatch.delenv("GANNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "kept").mkdir()
    with pytest.raises(GannetError, match="downloading it into"):
        data.mnist(tmp_path / "kept" / "new" / "deeper", download=True, progress=False)
    assert os.listdir(tmp_path / "kept") == []  # new/deeper/mnist made for the download, then removed


def test_toy1d_is_a_fixed_gaussian():
    a, b = data.toy1d(), data.toy1d()
    assert torch.equal(a.train, b.train) and a.train.shape == (10_000, 1)
    assert a.train.mean().item() == pytest.approx(2.0, abs=0.02)
    assert a.train.std().item() == pytest.approx(0.5, abs=0.02)


def test_data_dir_accepts_paths(tmp_path):
    assert data.search_dirs(Path("~/x"))[0] == Path.home() / "x"


# --- the tests' own data: the small MNIST, and real MNIST fetched where gannet looks -----------


@pytest.mark.parametrize("compress", [True, False])
def test_the_small_mnist_is_idx_files_gannet_reads_back(tmp_path, monkeypatch, compress):
    tiny = tiny_mnist.write(tmp_path, compress=compress)
    again = tiny_mnist.write(tmp_path / "again", compress=compress)
    suffix = ".gz" if compress else ""
    files = sorted(p.name for p in tiny.folder.iterdir())
    assert files == sorted(f"{name}{suffix}" for name in data.MNIST_FILES)
    assert all((tiny.folder / f).read_bytes() == (again.folder / f).read_bytes() for f in files)  # deterministic
    # MNIST's layout: magic 0x00000803 / 0x00000801, then each dimension, big-endian
    content = {name: data.mnist_idx._read_content(tiny.folder / f"{name}{suffix}") for name in data.MNIST_FILES}
    n = tiny_mnist.TRAIN + tiny_mnist.VALID
    assert content["train-images-idx3-ubyte"][:16] == bytes.fromhex("00000803") + np.array([n, 28, 28], ">u4").tobytes()
    assert (
        content["t10k-labels-idx1-ubyte"][:8]
        == bytes.fromhex("00000801") + np.array([tiny_mnist.TEST], ">u4").tobytes()
    )
    assert {name: len(c) for name, c in content.items()} == {name: size for name, (_, size) in tiny.files.items()}

    with pytest.raises(GannetError, match="does not hold MNIST's"):  # until accepted, not MNIST
        data.load_mnist(tiny.folder)
    tiny_mnist.accept(monkeypatch, tiny)
    loaded = data.load_mnist(tiny.folder)
    assert loaded.train.shape == (tiny_mnist.TRAIN, 784) and loaded.valid.shape == (tiny_mnist.VALID, 784)
    assert loaded.test.shape == (tiny_mnist.TEST, 784) and loaded.shape == (1, 28, 28)
    pixels = torch.cat([loaded.train, loaded.valid]).mul(255).round().to(torch.uint8).reshape(n, 28, 28)
    assert torch.equal(pixels, torch.from_numpy(tiny.images["train"]))
    assert torch.equal(
        loaded.test.mul(255).round().to(torch.uint8), torch.from_numpy(tiny.images["test"]).reshape(-1, 784)
    )
    labels = torch.cat([loaded.labels["train"], loaded.labels["valid"]])
    assert labels.tolist() == tiny.labels["train"].tolist()
    assert loaded.labels["test"].tolist() == tiny.labels["test"].tolist()
    # digits, not noise: black background, ink on a few pixels, every class equally often
    assert loaded.train.min() == 0 and loaded.train.max() > 0.7
    assert 0.05 < (loaded.train > 0.5).double().mean() < 0.3
    assert torch.bincount(loaded.labels["test"]).tolist() == [tiny_mnist.TEST // 10] * 10
    monkeypatch.undo()  # afterwards real MNIST's digests and split again
    assert (
        data.mnist_idx.MNIST_FILES["t10k-labels-idx1-ubyte"][1] == 10_008 and data.mnist_idx.MNIST_TRAIN_SIZE == 50_000
    )


def test_the_tests_download_mnist_where_gannet_looks(tmp_path, monkeypatch, mirrors):
    monkeypatch.setenv("GANNET_DATA", str(tmp_path / "env"))
    started = time.monotonic()
    folder = find_or_download_mnist((mirrors["dead"], mirrors["corrupt"], mirrors["good"]), timeout=2)
    assert folder == tmp_path / "env" / "mnist" and time.monotonic() - started < 10
    assert data.load_mnist(folder).train.shape == (tiny_mnist.TRAIN, 784)
    # found there the next time, without asking any mirror
    assert find_or_download_mnist((mirrors["dead"],), timeout=2) == folder


@pytest.fixture
def silent_mirror():
    """A mirror that accepts connections and never answers, as a network that drops packets."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"


def test_without_a_network_the_tests_wait_seconds_and_leave_nothing(tmp_path, monkeypatch, mirrors, silent_mirror):
    monkeypatch.setenv("GANNET_DATA", str(tmp_path / "env"))
    started = time.monotonic()
    assert find_or_download_mnist((mirrors["dead"], silent_mirror, "http://no-such-host.invalid/"), timeout=1) is None
    assert time.monotonic() - started < 3  # the mirrors are asked at once, each for a second at most
    assert not (tmp_path / "env").exists() and not (data.cache_dir() / "mnist").exists()
    # a mirror that answers but serves something else: no MNIST, nothing half-written
    assert find_or_download_mnist((mirrors["corrupt"],), timeout=1) is None
    assert os.listdir(tmp_path / "env" / "mnist") == []
