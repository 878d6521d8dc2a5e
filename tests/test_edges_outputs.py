"""Hostile values for the commands that read a trained model (sample, eval, figures, average,
infer): each is one sentence and exit status 2, found before any work, and writes nothing."""

import dataclasses
import errno
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gannet import checkpoints, figures  # noqa: F401 (imported before any test replaces sample)
from gannet.errors import GannetError
from gannet.outputs import WriteFailed, available_memory, check_writable, write_file

from .conftest import gannet

PARZEN = ["--num-samples", "50", "--num-valid", "20", "--num-test", "20", "--device", "cpu", "--no-ceiling"]


pytestmark = pytest.mark.timeout(60)  # a loop that never ends fails the case instead of hanging it


def listing(*folders: Path) -> set[str]:
    return {str(p) for folder in folders for p in Path(folder).rglob("*")}


def refused(capsys, *args, words: tuple[str, ...], unchanged: tuple[Path, ...] = ()) -> str:
    """Run the command; assert exit 2 with one line naming `words`, and nothing written under `unchanged`."""
    before = listing(*unchanged)
    code, out = gannet(*args, capsys=capsys)
    assert code == 2, out.err
    assert out.err.startswith("gannet: error: ") and out.err.count("\n") == 1, out.err
    assert "Traceback" not in out.err
    for word in words:
        assert word in out.err, out.err
    assert listing(*unchanged) == before
    return out.err


@pytest.fixture
def not_computed(monkeypatch):
    """Sampling fails the test: the refusal came before the computation."""
    for module in ("gannet.sampling", "gannet.figures"):  # figures imported the function itself
        monkeypatch.setattr(f"{module}.sample", lambda *a, **k: pytest.fail("sampled before the input was checked"))


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("x")
    return path


# --- gannet sample ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, words",
    [
        (["-n", "0"], ("-n must be at least 1",)),
        (["--seed", "-1"], ("--seed must be at least 0 (and at most 4,294,967,295), not -1",)),
        (["--seed", str(10**23)], ("--seed must be at most 4,294,967,295",)),
        (["-o", "OUT/x.txt"], ("must end in .png, .pdf or .svg",)),
        (["-o", ""], ("names no file",)),
        (["-o", "/proc/x.png"], ("cannot be written", "/proc")),
        (["-o", "FILE/x.png"], ("is a file, not a folder",)),
        (["-o", "FILE/deeper/x.png"], ("is a file, not a folder",)),
        (["--npy", "OUT/x.png"], ("--npy", "must end in .npy")),
        (["--npy", "/proc/x.npy"], ("--npy", "cannot be written")),
        (["-o", "OUT/new/deep/s.png", "--npy", "/proc/x.npy"], ("cannot be written",)),  # new/ is not left
        (["--device", "bogus"], ("not a device name",)),
        (["--device", ""], ("not a device name",)),
    ],
)
def test_sample_refuses_bad_values_before_sampling(mnist_run, tmp_path, a_file, not_computed, flags, words, capsys):
    flags = [f.replace("OUT", str(tmp_path)).replace("FILE", str(a_file)) for f in flags]
    refused(capsys, "sample", mnist_run, "-n", "4", *flags, words=words, unchanged=(tmp_path, mnist_run))


def test_sample_refuses_an_output_that_is_a_folder(mnist_run, tmp_path, not_computed, capsys):
    (tmp_path / "pictures.png").mkdir()
    refused(capsys, "sample", mnist_run, "-o", tmp_path / "pictures.png", words=("is a folder",), unchanged=(tmp_path,))
    (tmp_path / "raw.npy").mkdir()
    args = ("sample", mnist_run, "--npy", tmp_path / "raw.npy")
    refused(capsys, *args, words=("--npy", "is a folder"), unchanged=(tmp_path,))


def test_sample_refuses_more_than_the_memory_holds_saying_what_fits(mnist_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("gannet.outputs.available_memory", lambda: 1 << 30)
    err = refused(
        capsys, "sample", mnist_run, "-n", 10**11, "--npy", tmp_path / "s.npy",
        words=("-n 100,000,000,000", "needs about 570.4 TB", "1.0 GB is available"), unchanged=(tmp_path,),
    )  # fmt: skip
    assert "ask for fewer" in err
    # within the memory but too many for one picture: the picture is refused, the array alone is not
    monkeypatch.setattr("gannet.outputs.available_memory", lambda: 1 << 40)
    refused(capsys, "sample", mnist_run, "-n", 2_000_000, "-o", tmp_path / "s.png", words=("pixels", "65,535"))


def test_available_memory_is_what_this_machine_reports():
    meminfo = Path("/proc/meminfo").read_text()
    total = int(next(line for line in meminfo.splitlines() if line.startswith("MemTotal:")).split()[1]) * 1024
    assert 0 < available_memory() <= total


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(mnist_run, tmp_path, monkeypatch, capsys):
    npy = tmp_path / "s.npy"
    np.save(npy, np.zeros((2, 784), np.float32))
    old = npy.read_bytes()

    def disk_full(file, array):
        Path(file).write_bytes(b"\x93NUMPY half an arr")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("gannet.sampling.np.save", disk_full)
    err = refused(capsys, "sample", mnist_run, "-n", 4, "--npy", npy, words=("No space left on device",))
    assert "nothing was written" in err
    assert npy.read_bytes() == old and sorted(p.name for p in tmp_path.iterdir()) == ["s.npy"]


def test_write_file_is_whole_or_nothing_and_removes_the_folders_it_made(tmp_path):
    target = tmp_path / "new" / "deep" / "x.png"

    def half(tmp):
        tmp.write_bytes(b"half")
        raise OSError(errno.EROFS, "Read-only file system")

    with pytest.raises(WriteFailed) as caught:
        write_file(target, half)
    assert isinstance(caught.value, GannetError) and isinstance(caught.value, OSError)
    assert caught.value.filename == str(target) and "Read-only file system" in str(caught.value)
    assert not (tmp_path / "new").exists()
    assert write_file(target, lambda tmp: Image.new("L", (3, 2)).save(tmp)) == target
    assert Image.open(target).size == (3, 2) and [p.name for p in target.parent.iterdir()] == ["x.png"]


def test_check_writable_leaves_no_folder_or_file_behind(tmp_path):
    assert check_writable(tmp_path / "a" / "b" / "x.json", (".json",)) == tmp_path / "a" / "b" / "x.json"
    assert list(tmp_path.iterdir()) == []


def test_a_generator_that_draws_nan_is_refused_and_scores_nothing(mnist_run, tmp_path, capsys):
    tensors, metadata, path = checkpoints.load_weights(mnist_run)
    config = checkpoints.checkpoint_config(metadata, path)
    broken = {k: torch.full_like(v, float("nan")) if k.startswith("generator.") else v for k, v in tensors.items()}
    source = checkpoints.save_weights(tmp_path / "nan.safetensors", 1, broken, config, {})
    words = ("NaN or infinite", "damaged or diverged")
    refused(capsys, "sample", source, "-o", tmp_path / "s.png", words=words, unchanged=(tmp_path,))
    refused(capsys, "eval", "parzen", source, *PARZEN, words=words, unchanged=(tmp_path,))


# --- gannet eval parzen ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--batch-size", "-5"], ("--batch-size must be at least 1",)),
        (["--batch-size", "0"], ("--batch-size must be at least 1",)),
        (["--sigma", "nan"], ("--sigma", "must be positive", "not nan")),
        (["--sigma", "inf"], ("--sigma", "must be positive")),
        (["--sigma", "-0.2"], ("--sigma", "must be positive")),
        (["--sigma", "1e-200"], ("--sigma", "from 1e-06 to 1e+06")),
        (["--sigmas", "0.1,nan"], ("--sigmas", "must be positive", "not nan")),
        (["--sigmas", "0.1,-inf"], ("--sigmas", "must be positive")),
        (["--sigmas", ","], ("--sigmas names no width",)),
        (["--num-samples", "-2"], ("--num-samples must be at least 1",)),
        (["--num-test", "0"], ("--num-test must be at least 1",)),
        (["--seed", "-3"], ("--seed must be at",)),
        (["-o", "OUT/p.txt"], ("must end in .json",)),
        (["-o", "/proc/p.json"], ("cannot be written",)),
        (["-o", "OUT/p.json/x.json"], ("cannot be written",)),  # parent is a file
        (["--device", "gpu"], ("not a device name",)),
    ],
)
def test_eval_parzen_refuses_bad_values_before_sampling(mnist_run, tmp_path, not_computed, flags, words, capsys):
    (tmp_path / "p.json").write_text("{}")
    flags = [f.replace("OUT", str(tmp_path)) for f in flags]
    args = ("eval", "parzen", mnist_run, *PARZEN, *flags)
    refused(capsys, *args, words=words, unchanged=(tmp_path, mnist_run))
    assert (tmp_path / "p.json").read_text() == "{}"


def test_eval_parzen_refuses_a_batch_beyond_the_memory(mnist_run, tiny_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("gannet.outputs.available_memory", lambda: 500_000)  # the samples fit, the blocks do not
    args = ("eval", "parzen", mnist_run, *PARZEN, "--num-test", 2000, "--batch-size", 2000, "--data-dir", tiny_dir)
    words = ("--batch-size 2,000 with 50 samples", "needs about 781.2 KB")
    refused(capsys, *args, "-o", tmp_path / "p.json", words=words, unchanged=(tmp_path,))


def _npz_of_objects(path):
    np.savez(path, samples=np.full((3, 784), {"a": 1}, dtype=object))  # a pickle inside


def _npy_promising_more_than_it_holds(path):
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 784), np.float32))
    header["shape"] = (10**10, 784)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 1000)


@pytest.mark.parametrize(
    "make, name, words",
    [
        (lambda p: np.save(p, np.zeros((0, 784), np.float32)), "s.npy", ("holds no samples", "0 rows")),
        (lambda p: p.write_bytes(b"PK\x03\x04" + b"garbage" * 10), "s.npz", ("not a readable .npy or .npz",)),
        (_npz_of_objects, "s.npz", ("holds object values",)),
        (lambda p: p.write_bytes(b""), "s.npy", ("not a readable",)),
        (lambda p: np.save(p, np.zeros((3, 100), np.float32)), "s.npy", ("shape (3, 100)", "expected (N, 784)")),
        (lambda p: np.savez(p, samples=np.full((3, 784), np.nan)), "s.npz", ("NaN or infinite",)),
        (lambda p: np.savez(p), "s.npz", ("holds no array",)),
        (_npy_promising_more_than_it_holds, "s.npy", ("not a readable",)),
        (lambda p: p.mkdir(), "s.npy", ("is a folder",)),
    ],
)
def test_eval_parzen_refuses_bad_samples_files(tmp_path, make, name, words, monkeypatch, capsys):
    make(tmp_path / name)
    monkeypatch.setattr("gannet.data.load_dataset", lambda *a, **k: pytest.fail("data set loaded first"))
    args = ("eval", "parzen", "--samples", tmp_path / name, "-o", tmp_path / "p.json")
    refused(capsys, *args, words=words, unchanged=(tmp_path,))


def test_a_samples_file_larger_than_the_memory_is_refused_before_reading(tmp_path, monkeypatch, capsys):
    np.save(tmp_path / "s.npy", np.zeros((300, 784), np.float32))
    monkeypatch.setattr("gannet.outputs.available_memory", lambda: 1 << 20)
    refused(capsys, "eval", "parzen", "--samples", tmp_path / "s.npy", words=("300 samples", "needs about"))


def test_eval_parzen_writes_finite_json_only(tmp_path, tiny_dir, capsys):
    np.save(tmp_path / "s.npy", np.random.default_rng(0).random((40, 784), dtype=np.float32))
    args = ("eval", "parzen", "--samples", tmp_path / "s.npy", "--num-valid", 20, "--num-test", 20, "--no-ceiling")
    code, _ = gannet(*args, "--data-dir", tiny_dir, "-o", tmp_path / "p.json", capsys=capsys)
    assert code == 0
    record = json.loads((tmp_path / "p.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert np.isfinite(record["log_likelihood"])


# --- gannet eval quality / features -----------------------------------------------------------


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--num-samples", "1"], ("--num-samples must be at least 2",)),
        (["--seed", "-1"], ("--seed must be at",)),
        (["-o", "OUT/q.txt"], ("must end in .json",)),
        (["-o", "/proc/q.json"], ("cannot be written",)),
    ],
)
def test_eval_quality_refuses_bad_values_before_sampling(mnist_run, tmp_path, not_computed, flags, words, capsys):
    flags = [f.replace("OUT", str(tmp_path)) for f in flags]
    refused(capsys, "eval", "quality", mnist_run, *flags, words=words, unchanged=(tmp_path, mnist_run))


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--num-train", "0"], ("--num-train must be at least 100",)),
        (["--num-train", "-5"], ("--num-train must be at least 100",)),
        (["-o", "/proc/f.json"], ("cannot be written",)),
        (["-o", "OUT/f.png"], ("must end in .json",)),
    ],
)
def test_eval_features_refuses_bad_values_before_loading(mnist_run, tmp_path, monkeypatch, flags, words, capsys):
    monkeypatch.setattr("gannet.checkpoints.load_weights", lambda *a: pytest.fail("checkpoint loaded first"))
    flags = [f.replace("OUT", str(tmp_path)) for f in flags]
    refused(capsys, "eval", "features", mnist_run, *flags, words=words, unchanged=(tmp_path, mnist_run))


# --- gannet figures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "figure, flags, words",
    [
        ("fig2", ["--rows", "100000000"], ("--rows 100,000,000 and --columns 6", "pixels", "at most 65,535")),
        ("fig2", ["--columns", "100000000"], ("--columns 100,000,000", "pixels")),
        ("fig2", ["--rows", "0"], ("--rows must be at least 1",)),
        ("fig2", ["--columns", "1"], ("--columns must be at least 2",)),
        ("fig3", ["--rows", "1000", "-o", "OUT/f3.pdf"], ("--rows 1,000 and --steps 10", "pixels")),
        ("fig3", ["--steps", "-4"], ("--steps must be at least 2",)),
        ("fig3", ["--seed", str(10**20)], ("--seed must be at",)),
        ("fig2", ["-o", "/proc/f2.png"], ("cannot be written",)),
        ("fig2", ["-o", "FILE/f2.png"], ("is a file, not a folder",)),
        ("fig3", ["-o", ""], ("names no file",)),
        ("fig3", ["-o", "OUT/f3.jpg"], ("must end in .png, .pdf or .svg",)),
        ("classes", [], ("not a conditional model",)),
    ],
)
def test_image_figures_refuse_bad_values_before_drawing(
    mnist_run, tmp_path, a_file, not_computed, figure, flags, words, capsys
):
    flags = [f.replace("OUT", str(tmp_path)).replace("FILE", str(a_file)) for f in flags]
    flags = flags if "-o" in flags else [*flags, "-o", tmp_path / "f.png"]
    refused(capsys, "figures", figure, mnist_run, *flags, words=words, unchanged=(tmp_path, mnist_run))


@pytest.mark.parametrize(
    "args, words",
    [
        (["costs", "-o", "FILE/c.png"], ("is a file, not a folder",)),
        (["costs", "-o", "/proc/c.svg"], ("cannot be written",)),
        (["fig1", "--gif", "OUT/x.txt", "-o", "OUT/f1.png"], ("--gif", "must end in .gif")),
        (["fig1", "--gif", "/proc/x.gif", "-o", "OUT/f1.png"], ("--gif", "cannot be written")),
        (["fig1", "--seed", "-1", "-o", "OUT/f1.png"], ("--seed must be at",)),
        (["fig1", "FILE", "-o", "OUT/f1.png"], ("not a gannet checkpoint",)),
        (["curves", "FILE", "-o", "OUT/c.png"], ("is a file; curves draws a run directory",)),
        (["curves", "OUT", "-o", "OUT/c.png"], ("holds no metrics.jsonl",)),
    ],
)
def test_other_figures_refuse_bad_values_before_drawing(tmp_path, a_file, monkeypatch, args, words, capsys):
    monkeypatch.setattr("gannet.figure1.play", lambda *a, **k: pytest.fail("the toy game was played first"))
    args = [a.replace("OUT", str(tmp_path)).replace("FILE", str(a_file)) for a in args]
    refused(capsys, "figures", *args, words=words, unchanged=(tmp_path,))


def test_curves_draw_a_run_with_one_panel_and_refuse_one_with_none(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "momentum": 0.5}\n{"step": 2, "momentum": 0.6}\n')
    code, out = gannet("figures", "curves", run, "-o", tmp_path / "c.png", capsys=capsys)
    assert code == 0, out.err
    assert Image.open(tmp_path / "c.png").size[1] > 100
    args = ("figures", "curves", run, "--x", "minutes", "-o", tmp_path / "m.png")  # no epoch has ended
    refused(capsys, *args, words=("--x minutes", "finished epoch"), unchanged=(tmp_path,))
    other = tmp_path / "other"
    other.mkdir()
    (other / "metrics.jsonl").write_text('{"step": 1, "momentum": 0.7}\n')
    code, out = gannet("figures", "curves", run, other, "-o", tmp_path / "both.png", capsys=capsys)
    assert code == 0, out.err
    assert Image.open(tmp_path / "both.png").size[1] > 100
    args = ("figures", "curves", run, tmp_path / "nothing", "-o", tmp_path / "n.png")  # one of them is no run
    refused(capsys, *args, words=("nothing does not exist",), unchanged=(tmp_path,))
    (run / "metrics.jsonl").write_text('{"step": 1, "loss/d": "low"}\n{"step": 2}\n')
    args = ("figures", "curves", run, "-o", tmp_path / "d.png")
    refused(capsys, *args, words=("holds no losses",), unchanged=(tmp_path,))


def test_a_checkpoint_cannot_make_figures_create_the_folders_it_names(
    mnist_run, tiny_dir, tmp_path, monkeypatch, capsys
):
    """A checkpoint's config names a data folder where MNIST is not: fig2 looks there, but would
    download only into the usual places (here the test's cache), never into that folder."""
    tensors, metadata, path = checkpoints.load_weights(mnist_run)
    config = checkpoints.checkpoint_config(metadata, path)
    config = dataclasses.replace(config, data_dir=str(tmp_path / "chosen" / "by" / "the" / "file"), download=True)
    crafted = checkpoints.save_weights(tmp_path / "crafted.safetensors", 1, tensors, config, {})
    targets = []

    def download(target, progress=True):
        targets.append(Path(target))
        return tiny_dir / "mnist"

    monkeypatch.setattr("gannet.data.mnist_idx.download_mnist", download)
    args = ("figures", "fig2", crafted, "--rows", 1, "--columns", 2, "-o", tmp_path / "f2.png")
    code, out = gannet(*args, capsys=capsys)
    assert code == 0, out.err
    assert not (tmp_path / "chosen").exists()
    assert targets and all(tmp_path / "chosen" not in t.parents for t in targets)


# --- gannet average ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--epochs", "1-100000000000"], ("no checkpoint after epoch 3, 4, 5, 6, 7 and 99,999,999,993 more",)),
        (["--epochs", "0-2"], ("1 <= FIRST <= LAST",)),
        (["--epochs", "2-1"], ("1 <= FIRST <= LAST",)),
        (["--epochs", "1-2", "--every", "0"], ("--every must be at least 1",)),
        (["--epochs", "1-2", "--every", "-3"], ("--every must be at least 1",)),
        (["--epochs", "1-2", "-o", "OUT/a.png"], ("must end in .safetensors",)),
        (["--epochs", "1-2", "-o", "/proc/a.safetensors"], ("cannot be written",)),
        (["--epochs", "1-2", "-o", "OUT"], ("must end in .safetensors",)),
        (["--epochs", "1-2", "-o", "RUN/checkpoints/epoch-0001.safetensors"], ("would replace a checkpoint",)),
    ],
)
def test_average_refuses_bad_values_before_loading(mnist_run, tmp_path, monkeypatch, flags, words, capsys):
    monkeypatch.setattr("gannet.checkpoints.load_weights", lambda *a: pytest.fail("checkpoint loaded first"))
    flags = [f.replace("OUT", str(tmp_path)).replace("RUN", str(mnist_run)) for f in flags]
    refused(capsys, "average", mnist_run, *flags, words=words, unchanged=(tmp_path, mnist_run))


# --- gannet infer ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--steps", str(10**14)], ("--steps must be at most 1,000,000",)),
        (["--steps", "99"], ("--steps must be at least 100",)),
        (["--seed", "-1"], ("--seed must be at",)),
        (["-o", "FILE"], ("--output-dir", "is a file, not a folder")),
        (["-o", "FILE/sub"], ("is a file, not a folder",)),
        (["-o", "/proc/inference"], ("cannot be written",)),
    ],
)
def test_infer_refuses_bad_values_before_training(mnist_run, tmp_path, a_file, monkeypatch, flags, words, capsys):
    monkeypatch.setattr("gannet.inference.train_encoder", lambda *a, **k: pytest.fail("trained first"))
    flags = [f.replace("FILE", str(a_file)) for f in flags]
    refused(capsys, "infer", mnist_run, *flags, words=words, unchanged=(tmp_path, mnist_run))


def test_average_writes_its_output_and_leaves_the_checkpoints_alone(mnist_run, tmp_path, capsys):
    inputs = {p: p.read_bytes() for p in (mnist_run / "checkpoints").glob("epoch-*.safetensors")}
    code, out = gannet("average", mnist_run, "--epochs", "1-2", "-o", tmp_path / "mean.safetensors", capsys=capsys)
    assert code == 0, out.err
    assert {p: p.read_bytes() for p in inputs} == inputs
    assert checkpoints.load_weights(tmp_path / "mean.safetensors")[1]["averaged_epochs"] == "1,2"
    assert [p.name for p in tmp_path.iterdir()] == ["mean.safetensors"]
