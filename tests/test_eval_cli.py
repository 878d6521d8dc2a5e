"""`gannet eval parzen` as a user runs it."""

import json
import os
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from gannet.data import load_mnist
from gannet.parzen import evaluate
from gannet.sampling import load_generator, sample

from .conftest import gannet

# on the CPU, as the API's numbers below: the same to the last bits (a GPU's agree to rounding: last test)
SMALL = ["--num-samples", "500", "--num-test", "200", "--num-valid", "100", "--device", "cpu"]


def test_eval_parzen_of_a_run_reports_and_saves_the_papers_protocol(mnist_run, tiny_dir, capsys):
    code, out = gannet("eval", "parzen", mnist_run, *SMALL, "--data-dir", tiny_dir, capsys=capsys)
    assert code == 0
    record = json.loads((mnist_run / "parzen.json").read_text())
    # the same numbers, computed directly from the API
    generator, config, _ = load_generator(mnist_run)
    mnist = load_mnist(tiny_dir / "mnist")
    direct = evaluate(sample(generator, config, 500, seed=0), mnist.valid[:100], mnist.test[:200])
    assert record["log_likelihood"] == pytest.approx(direct.log_likelihood, rel=1e-9)
    assert record["sigma"] == pytest.approx(direct.sigma)
    assert f"LL = {direct.log_likelihood:.2f} ± {direct.standard_error:.2f}" in out.out
    assert "ceiling: 500 real training images" in out.out and "Adversarial nets 225 ± 2" in out.out
    assert record["ceiling"]["log_likelihood"] > record["log_likelihood"]  # real data scores higher
    direct_ceiling = evaluate(mnist.train[:500], mnist.valid[:100], mnist.test[:200])
    assert record["ceiling"]["log_likelihood"] == pytest.approx(direct_ceiling.log_likelihood, rel=1e-9)
    # the second time the ceiling comes from the cache, with the same numbers
    code, again = gannet("eval", "parzen", mnist_run, *SMALL, "--data-dir", tiny_dir, capsys=capsys)
    assert code == 0 and json.loads((mnist_run / "parzen.json").read_text()) == record


def test_scoring_a_runs_checkpoints_never_overwrites_the_runs_own_result(mnist_run, tiny_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(mnist_run, run)
    (run / "parzen.json").unlink(missing_ok=True)
    small = [*SMALL, "--no-ceiling", "--data-dir", tiny_dir]
    assert gannet("eval", "parzen", run, *small, capsys=capsys)[0] == 0
    record = json.loads((run / "parzen.json").read_text())
    newest = sorted((run / "checkpoints").glob("epoch-*.safetensors"))[-1]
    assert gannet("eval", "parzen", newest, *small, "--seed", "1", capsys=capsys)[0] == 0
    beside = json.loads((run / f"parzen-{newest.stem}.json").read_text())
    assert json.loads((run / "parzen.json").read_text()) == record  # the run's result untouched
    assert beside["source"] == str(newest) and beside["log_likelihood"] != record["log_likelihood"]


def test_eval_parzen_by_class_scores_each_digit_beside_the_ceiling(mnist_run, tiny_dir, tmp_path, capsys):
    out_file = tmp_path / "p.json"
    code, out = gannet(
        "eval", "parzen", mnist_run, *SMALL, "--by-class", "-o", out_file, "--data-dir", tiny_dir, capsys=capsys
    )  # fmt: skip
    assert code == 0
    record = json.loads(out_file.read_text())
    mnist = load_mnist(tiny_dir / "mnist")
    labels = mnist.labels["test"][:200]
    generator, config, _ = load_generator(mnist_run)
    direct = evaluate(sample(generator, config, 500, seed=0), mnist.valid[:100], mnist.test[:200], test_labels=labels)
    assert sorted(map(int, record["per_class"])) == sorted(labels.unique().tolist())
    for label, score in direct.per_class.items():
        assert record["per_class"][str(label)]["log_likelihood"] == pytest.approx(score.log_likelihood, rel=1e-9)
        assert record["per_class"][str(label)]["num_test"] == int((labels == label).sum())
    # beside the real training images' score at the model's sigma, not at the ceiling's own
    assert record["ceiling"]["sigma"] != direct.sigma  # this untrained model: the comparison is rescored
    real = evaluate(mnist.train[:500], mnist.valid[:100], mnist.test[:200], sigma=direct.sigma, test_labels=labels)
    lines = out.out.splitlines()
    start = next(i for i, line in enumerate(lines) if "by test class" in line)
    assert f"sigma = {direct.sigma:.4g}" in lines[start]
    rows = lines[start + 1 : start + 1 + len(direct.per_class)]
    gaps = [float(row.split("gap")[1]) for row in rows]
    assert gaps == sorted(gaps, reverse=True)
    for row, gap in zip(rows, gaps):
        label = int(row.split()[0])
        expected = real.per_class[label].log_likelihood - direct.per_class[label].log_likelihood
        assert gap == pytest.approx(expected, abs=0.006)


def test_eval_parzen_of_a_samples_file(tmp_path, tiny_dir, capsys):
    mnist = load_mnist(tiny_dir / "mnist")
    np.save(tmp_path / "s.npy", mnist.train[:300].numpy())
    np.savez(tmp_path / "s.npz", samples=mnist.train[:300].numpy())
    results = []
    for name in ("s.npy", "s.npz"):
        code, _ = gannet(
            "eval",
            "parzen",
            "--samples",
            tmp_path / name,
            "--sigma",
            "0.2",
            "--num-test",
            100,
            "--no-ceiling",
            "--device",
            "cpu",
            "-o",
            tmp_path / f"{name}.json",
            "--data-dir",
            tiny_dir,
            capsys=capsys,
        )
        assert code == 0
        results.append(json.loads((tmp_path / f"{name}.json").read_text()))
    direct = evaluate(mnist.train[:300], mnist.valid[:1], mnist.test[:100], sigma=0.2)
    assert results[0]["log_likelihood"] == pytest.approx(direct.log_likelihood, rel=1e-9)
    assert results[0] == {**results[1], "source": results[0]["source"]}


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((5, 10)), "shape (5, 10); expected (N, 784)"),
        (np.full((5, 784), np.nan), "NaN or infinite"),
        (np.full((5, 784), 1.5), "expected pixels in [0, 1]"),
        (np.array([{"a": 1}], dtype=object), "not a readable .npy"),  # a pickle inside: refused
    ],
)
def test_bad_samples_files_are_one_sentence(tmp_path, tiny_dir, array, message, capsys, monkeypatch):
    np.save(tmp_path / "bad.npy", array, allow_pickle=True)
    # the file is checked first: no waiting for MNIST to load (or download) to hear it is wrong
    monkeypatch.setattr("gannet.data.load_dataset", lambda *a, **k: pytest.fail("data set loaded first"))
    code, out = gannet("eval", "parzen", "--samples", tmp_path / "bad.npy", "--data-dir", tiny_dir, capsys=capsys)
    assert code == 2 and message in out.err and out.err.count("\n") == 1


def test_eval_parzen_refuses_contradictory_input(mnist_run, tmp_path, capsys):
    code, out = gannet("eval", "parzen", mnist_run, "--samples", tmp_path / "x.npy", capsys=capsys)
    assert code == 2 and "one of the two" in out.err
    code, out = gannet("eval", "parzen", mnist_run, "--sigma", "-1", capsys=capsys)
    assert code == 2 and "must be positive" in out.err


def test_samples_are_float32_tensors(tmp_path):
    from gannet.sampling import load_samples_file

    np.save(tmp_path / "u8.npy", np.ones((3, 784), dtype=np.uint8))
    assert load_samples_file(tmp_path / "u8.npy", 784).dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_seed_means_the_same_samples_and_score_on_a_gpu(mnist_run, tiny_dir, tmp_path, capsys):
    generator, config, _ = load_generator(mnist_run)
    on_cpu = sample(generator, config, 300, seed=3)
    on_gpu = sample(generator.cuda(), config, 300, seed=3, device="cuda").cpu()
    assert (on_gpu - on_cpu).abs().max() < 1e-5  # z drawn on the CPU either way: only rounding differs
    scores = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.json"
        args = [*SMALL[:-2], "--device", device, "--no-ceiling", "-o", out, "--data-dir", tiny_dir]
        assert gannet("eval", "parzen", mnist_run, *args, capsys=capsys)[0] == 0
        scores[device] = json.loads(out.read_text())
    assert scores["cuda"]["sigma"] == scores["cpu"]["sigma"]
    assert scores["cuda"]["log_likelihood"] == pytest.approx(scores["cpu"]["log_likelihood"], abs=1e-3)


def test_eval_and_figures_read_the_runs_own_data_folder(mnist_run, tiny_dir, tmp_path, monkeypatch, capsys):
    """mnist_run was trained with --data-dir: without one, eval and figures read that folder, not
    $GANNET_DATA or the per-user cache, and download nothing."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("GANNET_DATA", str(empty))
    monkeypatch.setattr("gannet.data.mnist_idx.download_mnist", lambda *a, **k: pytest.fail("tried to download"))
    code, out = gannet("eval", "parzen", mnist_run, *SMALL, "--no-ceiling", "-o", tmp_path / "p.json", capsys=capsys)
    assert code == 0, out.err
    generator, config, _ = load_generator(mnist_run)
    mnist = load_mnist(tiny_dir / "mnist")
    direct = evaluate(sample(generator, config, 500, seed=0), mnist.valid[:100], mnist.test[:200])
    assert json.loads((tmp_path / "p.json").read_text())["log_likelihood"] == pytest.approx(direct.log_likelihood)
    args = ("figures", "fig2", mnist_run, "--rows", 1, "--columns", 2, "-o", tmp_path / "f2.png")
    assert gannet(*args, capsys=capsys)[0] == 0
    assert list(empty.iterdir()) == []


def test_a_reader_that_leaves_early_does_not_cost_the_saved_result(data_dir, tmp_path):
    # `| head -1` closes the pipe after the score's line; the ceiling's line comes later, and the
    # result file after it: it must be written all the same
    result = tmp_path / "p.json"
    command = [sys.executable, "-m", "gannet", "eval", "parzen", "mnist", *SMALL, "--data-dir", data_dir, "-o", result]
    shell = f"{shlex.join(map(str, command))} | head -1; exit ${{PIPESTATUS[0]}}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.count("\n") == 1 and ": LL = " in done.stdout
    assert json.loads(result.read_text())["log_likelihood"] == pytest.approx(
        float(done.stdout.split("LL = ")[1].split()[0]), abs=0.01
    )
