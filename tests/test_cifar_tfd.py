"""CIFAR-10 and TFD: loaders on small files the tests write in the original formats, the
paper's convolutional and fully connected architectures, and runs of their presets."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import math
import os
import pickle
import tarfile
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from gannet import data
from gannet.data import cifar_tar
from gannet.errors import GannetError
from gannet.networks import build_networks, clip_column_norms
from gannet.presets import preset_config
from tests.conftest import gannet

PER_BATCH = 20  # images per CIFAR batch file here (10,000 in the real one)


def write_cifar_tarball(path, seed=0, batches=None):
    """A cifar-10-python.tar.gz laid out as the original: cifar-10-batches-py/ with five
    training batches, a test batch and batches.meta, each a protocol-2 pickle of a dict."""
    rng = np.random.default_rng(seed)
    names = [*data.CIFAR10_TRAIN, data.CIFAR10_TEST]
    contents = {}
    for i, name in enumerate(names):
        contents[name] = batches.get(name) if batches and name in batches else None
        if contents[name] is None:
            batch = {
                "batch_label": f"batch {i + 1} of 5",
                "labels": rng.integers(0, 10, PER_BATCH).tolist(),
                "data": rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8),
                "filenames": [f"img_{i}_{j}.png" for j in range(PER_BATCH)],
            }
            contents[name] = pickle.dumps(batch, protocol=2)
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    contents["cifar-10-batches-py/batches.meta"] = pickle.dumps(meta, protocol=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, raw in contents.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return path


def accept(monkeypatch, path):
    """Make the loader's checksum the small tarball's (the real one's is the 170 MB original's)."""
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setattr(cifar_tar, "CIFAR10_SUM", (digest, path.stat().st_size))


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    archive = write_cifar_tarball(tmp_path / "data" / "cifar10" / data.CIFAR10_ARCHIVE)
    accept(monkeypatch, archive)
    return tmp_path / "data"


def raw_batch(archive_path, member):
    with tarfile.open(archive_path) as archive:
        return pickle.loads(archive.extractfile(member).read(), encoding="latin1")


# --- global contrast normalisation -------------------------------------------------------


def test_gcn_by_hand():
    out = data.global_contrast_normalize(np.array([[1.0, 3.0], [7.0, 7.0], [0.0, 4.0]]), scale=55.0)
    # [1, 3] -> centred [-1, 1], norm √2 -> each ±55/√2; a constant row stays 0 (norm below 1e-8).
    assert np.allclose(out[0], [-55 / math.sqrt(2), 55 / math.sqrt(2)])
    assert np.array_equal(out[1], [0.0, 0.0])
    assert np.allclose(out[2], [-55 / math.sqrt(2), 55 / math.sqrt(2)])


# --- CIFAR-10 ------------------------------------------------------------------------------


def test_cifar10_splits_order_and_normalisation(cifar_dir):
    archive = cifar_dir / "cifar10" / data.CIFAR10_ARCHIVE
    cifar = data.load_dataset("cifar10", cifar_dir, download=False)
    assert cifar.shape == (3, 32, 32)
    # batches 1-4 train (40,000 of 50,000 in the real set), batch 5 validates
    assert cifar.train.shape == (4 * PER_BATCH, 3072) and cifar.valid.shape == (PER_BATCH, 3072)
    assert cifar.test.shape == (PER_BATCH, 3072)
    members = (data.CIFAR10_TRAIN[0], data.CIFAR10_TRAIN[4], data.CIFAR10_TEST)
    first, fifth, test = (raw_batch(archive, m) for m in members)
    expected = data.global_contrast_normalize(first["data"][:1].astype(np.float64))
    assert torch.allclose(cifar.train[0], torch.from_numpy(expected[0]), atol=1e-5)  # pixel order kept
    assert torch.allclose(cifar.valid[3], torch.from_numpy(data.global_contrast_normalize(fifth["data"][3:4])[0]))
    assert cifar.labels["train"][:PER_BATCH].tolist() == first["labels"]
    assert cifar.labels["test"].tolist() == test["labels"]
    norms = cifar.train.double().norm(dim=1)
    assert torch.allclose(norms, torch.full_like(norms, 55.0), rtol=1e-5)
    assert cifar.train.double().mean(dim=1).abs().max() < 1e-4


def test_cifar10_wrong_checksum_is_refused(cifar_dir, monkeypatch):
    monkeypatch.setattr(cifar_tar, "CIFAR10_SUM", ("0" * 32, 1))
    with pytest.raises(GannetError, match="is not CIFAR-10's cifar-10-python.tar.gz"):
        data.load_dataset("cifar10", cifar_dir, download=False)


def test_cifar10_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    victim = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {victim}",))

    archive = tmp_path / "d" / "cifar10" / data.CIFAR10_ARCHIVE
    write_cifar_tarball(archive, batches={data.CIFAR10_TRAIN[2]: pickle.dumps({"data": Exploit()}, protocol=2)})
    accept(monkeypatch, archive)
    with pytest.raises(GannetError, match=r"data_batch_3 cannot be read \(refusing to load posix.system\)"):
        data.load_dataset("cifar10", tmp_path / "d", download=False)
    assert not victim.exists()


def test_cifar10_batch_of_the_wrong_shape_is_one_error(tmp_path, monkeypatch):
    bad = {"data": np.zeros((5, 100), dtype=np.uint8), "labels": [0] * 5}
    archive = tmp_path / "d" / "cifar10" / data.CIFAR10_ARCHIVE
    write_cifar_tarball(archive, batches={data.CIFAR10_TEST: pickle.dumps(bad, protocol=2)})
    accept(monkeypatch, archive)
    with pytest.raises(GannetError, match="test_batch cannot be read"):
        data.load_dataset("cifar10", tmp_path / "d", download=False)


def test_cifar10_absent_without_download_says_where_it_looked(tmp_path):
    with pytest.raises(GannetError, match=r"CIFAR-10 was not found .* folder holding cifar10/cifar-10-python.tar.gz"):
        data.load_dataset("cifar10", tmp_path, download=False)


@pytest.fixture
def file_server(tmp_path):
    """Serves tmp_path/www over HTTP: good.tar.gz and bad.tar.gz are put there by the test."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_cifar10_download_verifies_and_falls_through(tmp_path, file_server, monkeypatch):
    root, base = file_server
    good = write_cifar_tarball(root / "good.tar.gz")
    write_cifar_tarball(root / "bad.tar.gz", seed=1)  # a valid tarball, but not the expected one
    accept(monkeypatch, good)
    target = tmp_path / "target"
    path = data.download_cifar10(target, (f"{base}/missing.tar.gz", f"{base}/bad.tar.gz", f"{base}/good.tar.gz"), False)
    assert path == target / "cifar10" / data.CIFAR10_ARCHIVE
    assert path.read_bytes() == good.read_bytes()
    assert sorted(os.listdir(path.parent)) == [data.CIFAR10_ARCHIVE]
    assert data.load_cifar10(path).train.shape == (4 * PER_BATCH, 3072)


def test_cifar10_failed_download_names_each_source_and_leaves_nothing(tmp_path, file_server, monkeypatch):
    root, base = file_server
    accept(monkeypatch, write_cifar_tarball(tmp_path / "expected.tar.gz"))
    write_cifar_tarball(root / "bad.tar.gz", seed=1)
    with pytest.raises(GannetError) as error:
        data.download_cifar10(tmp_path / "t", (f"{base}/missing.tar.gz", f"{base}/bad.tar.gz"), False)
    message = str(error.value)
    assert "missing.tar.gz (File not found)" in message and "bad.tar.gz" in message and "is not CIFAR-10's" in message
    assert os.listdir(tmp_path / "t" / "cifar10") == []


# --- TFD -----------------------------------------------------------------------------------


def write_tfd(path, n=60, seed=0):
    """A TFD_48x48.mat in the original layout: images (N, 48, 48) uint8, folds (N, 5) with
    0 unlabeled, 1 train, 2 valid, 3 test, plus the label arrays the real file has."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    folds = np.zeros((n, 5), dtype=np.uint8)
    folds[:, 0] = np.repeat([0, 1, 2, 3], n // 4)  # fold 0: 15 of each
    folds[:, 1] = np.roll(folds[:, 0], 7)
    images = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, {"images": images, "folds": folds, "labs_ex": np.full((n, 1), -1), "labs_id": np.zeros((n, 1))})
    return images, folds


def test_tfd_folds_and_scaling(tmp_path):
    images, folds = write_tfd(tmp_path / "tfd" / data.TFD_FILE)
    tfd = data.load_dataset("tfd", tmp_path)
    assert tfd.shape == (1, 48, 48)
    assert len(tfd.train) == len(tfd.valid) == len(tfd.test) == 15  # unlabeled / valid / test of fold 0
    unlabeled = images[folds[:, 0] == 0].reshape(-1, 2304) / 255
    assert torch.allclose(tfd.train, torch.from_numpy(unlabeled).float())
    test = images[folds[:, 0] == 3].reshape(-1, 2304) / 255
    assert torch.allclose(tfd.test, torch.from_numpy(test).float())
    other = data.load_tfd(tmp_path / "tfd" / data.TFD_FILE, fold=1)
    assert not torch.equal(other.test, tfd.test)


def test_tfd_in_pylearn2s_folder_is_found(tmp_path):
    write_tfd(tmp_path / "faces" / "TFD" / data.TFD_FILE)
    assert data.find_tfd(tmp_path) == tmp_path / "faces" / "TFD" / data.TFD_FILE


def test_tfd_absent_is_one_error_about_the_licence(tmp_path):
    with pytest.raises(GannetError, match="licence-restricted and cannot be downloaded.*TFD_48x48.mat"):
        data.load_dataset("tfd", tmp_path)


def test_tfd_wrong_file_is_one_error(tmp_path):
    from scipy.io import savemat

    (tmp_path / "tfd").mkdir()
    savemat(tmp_path / "tfd" / data.TFD_FILE, {"pictures": np.zeros((3, 48, 48))})
    with pytest.raises(GannetError, match="is not TFD's 48x48 .mat file"):
        data.load_dataset("tfd", tmp_path)
    (tmp_path / "tfd" / data.TFD_FILE).write_bytes(b"not a mat file at all")
    with pytest.raises(GannetError, match="is not TFD's 48x48 .mat file"):
        data.load_dataset("tfd", tmp_path)


# --- the paper's CIFAR-10 and TFD architectures ----------------------------------------------


def test_cifar10_conv_networks_have_the_2014_shapes():
    config = preset_config("cifar10-conv")
    G, D = build_networks(config, (3, 32, 32))
    x = torch.randn(2, 3072)
    h, sizes = x.view(2, 3, 32, 32), []
    for layer in D.convs:
        h = layer(h)
        sizes.append(tuple(h.shape[1:]))
    # pad 4, 8x8 -> 33, pool 4/2 -> 16; pad 3, 8x8 -> 15, pool 4/2 -> 7; pad 3, 5x5 -> 9, pool 2/2 -> 5
    assert sizes == [(32, 16, 16), (32, 7, 7), (192, 5, 5)]
    assert D.hidden[0].linear.in_features == 192 * 25 and D.hidden[0].linear.out_features == 500 * 5
    assert D.convs[0].conv.out_channels == 64  # 32 units x 2 pieces
    assert D(x).shape == (2,)
    assert G.output.stride == (3, 3) and G.output_bias.shape == (3, 32, 32)  # untied biases
    assert isinstance(G.hidden[1], torch.nn.ReLU) and isinstance(G.hidden[3], torch.nn.Sigmoid)
    out = G(torch.randn(2, 100))
    assert out.shape == (2, 3072) and out.min() < 0  # linear output for GCN pixels
    assert G.output.weight.abs().max() <= 0.05 and D.convs[0].conv.weight.abs().max() <= 0.005


def test_cifar10_fc_and_tfd_networks():
    G, D = build_networks(preset_config("cifar10-fc"), (3, 32, 32))
    assert [m.out_features for m in G.modules() if isinstance(m, torch.nn.Linear)] == [8000, 8000, 3072]
    assert 0.4 < G.output.weight.abs().max() <= 0.5  # the 2014 code's irange .5 on the output layer
    assert G.hidden[0].weight.abs().max() <= 0.05
    assert [layer.units for layer in D.hidden] == [1600, 1600]
    config = preset_config("tfd")
    assert config.max_col_norm == 1.9365 and config.noise == "gaussian"
    G, D = build_networks(config, (1, 48, 48))
    assert G(torch.randn(3, 100)).shape == (3, 2304) and [layer.units for layer in D.hidden] == [1200, 1200]


def test_max_col_norm_by_hand():
    layer = torch.nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 4.0], [0.3, 0.4]]))  # unit 0: norm 5; unit 1: norm 0.5
    clip_column_norms(layer, 1.9365)
    assert torch.allclose(layer.weight[0], torch.tensor([3.0, 4.0]) * 1.9365 / (5 + 1e-7))
    assert torch.allclose(layer.weight[1], torch.tensor([0.3, 0.4]) * 0.5 / (0.5 + 1e-7))


def test_conv_players_that_do_not_fit_the_data_are_one_error():
    config = preset_config("cifar10-conv")
    with pytest.raises(GannetError, match=r"makes 1x32x32 images from 80x10x10.*data's are 1x28x28"):
        build_networks(config, (1, 28, 28))
    with pytest.raises(GannetError, match="need image data"):
        build_networks(config, (2,))
    with pytest.raises(GannetError, match="must hold exactly the last hidden layer's units"):
        preset_config("cifar10-conv", generator_hidden=[8000, 100])
    small = preset_config(
        "cifar10-conv", generator_hidden=[64, 320], generator_deconv_shape=[80, 2, 2], generator_deconv_kernel=1
    )
    with pytest.raises(GannetError, match="shrink"):
        build_networks(small, (3, 4, 4))


# --- the presets, run as a user runs them ------------------------------------------------------

SMALL_G = ["--generator-hidden", "64,800", "--no-progress", "--log-every", "2", "--batch-size", "20"]


def test_train_cifar10_conv_end_to_end(cifar_dir, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--generator-deconv-shape", "8,10,10", "--data-dir", cifar_dir, "--run-dir", run, "--epochs", 1]
    code, _ = gannet("train", "cifar10-conv", *SMALL_G, *args, capsys=capsys)
    assert code == 0
    config = json.loads((run / "config.json").read_text())
    assert config["discriminator_conv_channels"] == [32, 32, 192] and config["dataset"] == "cifar10"
    grid = Image.open(sorted((run / "samples").glob("*.png"))[-1])
    assert grid.mode == "RGB"
    pixels = np.asarray(grid)
    assert pixels.std() > 5  # rescaled GCN samples, not a flat grey
    code, out = gannet("sample", run, "-n", 4, "-o", tmp_path / "s.png", "--npy", tmp_path / "s.npy", capsys=capsys)
    assert code == 0 and np.load(tmp_path / "s.npy").shape == (4, 3072)


def test_train_cifar10_fc_and_tfd_end_to_end(cifar_dir, tmp_path, capsys):
    code, _ = gannet(
        "train", "cifar10-fc", *SMALL_G, "--discriminator-hidden", "32,32", "--data-dir", cifar_dir,
        "--run-dir", tmp_path / "fc", "--epochs", 1, capsys=capsys,
    )  # fmt: skip
    assert code == 0
    write_tfd(tmp_path / "tfd-data" / "tfd" / data.TFD_FILE)
    run = tmp_path / "tfd-run"
    code, _ = gannet(
        "train", "tfd", *SMALL_G, "--discriminator-hidden", "32,32", "--batch-size", "5", "--parzen-samples", 100,
        "--data-dir", tmp_path / "tfd-data", "--run-dir", run, "--epochs", 2, capsys=capsys,
    )  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("parzen/valid" in r for r in rows)
    code, captured = gannet(
        "eval", "parzen", run, "--dataset", "tfd", "--num-samples", 200, "--data-dir", tmp_path / "tfd-data",
        "--no-ceiling", capsys=capsys,
    )  # fmt: skip
    assert code == 0
    assert "Table 1 (TFD): DBN 1909 ± 66" in captured.out and "Adversarial nets 2057 ± 26" in captured.out
    saved = json.loads((run / "parzen.json").read_text())
    assert saved["dataset"] == "tfd" and saved["num_test"] == 15 and saved["num_valid"] == 15
    code, captured = gannet(
        "eval", "parzen", run, "--dataset", "tfd", "--num-samples", 20, "--data-dir", tmp_path / "tfd-data",
        "--no-ceiling", "--by-class", capsys=capsys,
    )  # fmt: skip
    assert code == 2 and "--by-class needs test labels" in captured.err


def test_data_check_lists_every_data_set(cifar_dir, capsys):
    code, captured = gannet("data", "check", "--data-dir", cifar_dir, capsys=capsys)
    out = captured.out
    assert "cifar10: present and verified" in out and "train 80, valid 20, test 20" in out
    assert "tfd: TFD is licence-restricted" in out and "ring8: generated" in out
    assert code == 1  # MNIST is absent from this folder
