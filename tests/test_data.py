import gzip
import hashlib
import http.server
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest
import torch

from gannet import data
from gannet.errors import GannetError


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


def test_data_is_looked_for_in_data_dir_then_env_then_cache(tmp_path, monkeypatch, data_dir):
    env_dir, cache = tmp_path / "env", data.cache_dir()
    monkeypatch.setenv("GANNET_DATA", str(env_dir))
    assert data.search_dirs(tmp_path / "flag") == [tmp_path / "flag", env_dir, cache]
    shutil.copytree(data_dir / "mnist", cache / "mnist")
    assert data.find_mnist(tmp_path / "flag") == cache / "mnist"
    shutil.copytree(data_dir / "mnist", env_dir / "mnist")
    assert data.find_mnist(tmp_path / "flag") == env_dir / "mnist"
    assert data.find_mnist(data_dir) == data_dir / "mnist"


def test_missing_mnist_says_where_it_looked(tmp_path):
    with pytest.raises(GannetError, match=r"not found \(looked in .*nowhere/mnist.*gannet data download"):
        data.mnist(tmp_path / "nowhere", download=False)


def test_truncated_file_is_named(tmp_path, data_dir):
    folder = tmp_path / "mnist"
    shutil.copytree(data_dir / "mnist", folder)
    name = "t10k-labels-idx1-ubyte.gz"
    (folder / name).write_bytes((data_dir / "mnist" / name).read_bytes()[:500])
    with pytest.raises(GannetError, match=f"{name} is truncated or corrupt"):
        data.load_mnist(folder)


def test_wrong_content_is_refused_by_checksum(tmp_path, data_dir):
    folder = tmp_path / "mnist"
    shutil.copytree(data_dir / "mnist", folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    (folder / "t10k-labels-idx1-ubyte").write_bytes(b"\0" * 10_008)  # right size, wrong bytes
    with pytest.raises(GannetError, match="expected 10,008 bytes and MD5 27ae3e4e"):
        data.load_mnist(folder)


def test_uncompressed_files_are_accepted(tmp_path, data_dir):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in data.MNIST_FILES:
        with gzip.open(data_dir / "mnist" / f"{name}.gz") as f:
            (folder / name).write_bytes(f.read())
    assert data.load_mnist(folder).test.shape == (10_000, 784)


# --- download against a local HTTP server -----------------------------------------------------


@pytest.fixture
def mirrors(data_dir):
    """Three mirrors on loopback: good (the real files), corrupt (garbage), dead (nothing listens)."""
    good = {f"/good/{p.name}": p.read_bytes() for p in (data_dir / "mnist").glob("*.gz")}
    corrupt = {f"/corrupt/{name}": gzip.compress(b"not mnist") for name in (p.split("/")[-1] for p in good)}
    files = {**good, **corrupt}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
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
    yield {"good": f"{base}/good/", "corrupt": f"{base}/corrupt/", "dead": f"http://127.0.0.1:{dead_port}/"}
    server.shutdown()


def test_download_falls_through_dead_and_corrupt_mirrors(tmp_path, mirrors):
    folder = data.download_mnist(tmp_path, (mirrors["dead"], mirrors["corrupt"], mirrors["good"]), progress=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.gz" for n in data.MNIST_FILES)
    loaded = data.load_mnist(folder)
    assert loaded.train.shape == (50_000, 784)
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
        assert hashlib.md5(f.read()).hexdigest() == "27ae3e4e09519cfbb04c329615203637"


def test_failed_download_names_each_mirror_and_leaves_nothing(tmp_path, mirrors):
    with pytest.raises(GannetError) as error:
        data.download_mnist(tmp_path, (mirrors["dead"], mirrors["corrupt"]), progress=False)
    message = str(error.value)
    assert mirrors["dead"] in message and "refused" in message.lower()
    assert mirrors["corrupt"] in message and "does not hold MNIST" in message
    assert os.listdir(tmp_path / "mnist") == []  # no half-written or temporary file


def test_training_downloads_missing_mnist_into_the_first_data_folder(tmp_path, mirrors, monkeypatch):
    monkeypatch.setattr(data.download_mnist, "__defaults__", ((mirrors["good"],), True))
    loaded = data.mnist(tmp_path / "fresh", download=True, progress=False)
    assert loaded.valid.shape == (10_000, 784)
    assert (tmp_path / "fresh" / "mnist" / "train-images-idx3-ubyte.gz").is_file()


def test_toy1d_is_a_fixed_gaussian():
    a, b = data.toy1d(), data.toy1d()
    assert torch.equal(a.train, b.train) and a.train.shape == (10_000, 1)
    assert a.train.mean().item() == pytest.approx(2.0, abs=0.02)
    assert a.train.std().item() == pytest.approx(0.5, abs=0.02)


def test_data_dir_accepts_paths(tmp_path):
    assert data.search_dirs(Path("~/x"))[0] == Path.home() / "x"
