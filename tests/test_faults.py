"""Runs that survive faults and bad input (issue 7): signals, kill -9, NaN, a full disk, bad
configs, and fuzzed data files, checkpoints and configs."""

from __future__ import annotations

import errno
import gzip
import importlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gannet import checkpoints
from gannet import config as config_module
from gannet.checkpoints import load_state, load_weights
from gannet.data import read_mnist_file
from gannet.errors import GannetError
from gannet.metrics import CollapseWatch, read_metrics
from gannet.presets import preset_config
from gannet.train import train

from .conftest import gannet, timeless

# 2,000 images and 20 steps an epoch: on a CPU slow enough to be stopped mid-epoch, fast enough for CI.
RUN = [
    "train",
    "mnist",
    "--device",
    "cpu",
    "--train-limit",
    "2000",
    "--log-every",
    "2",
    "--no-progress",
    "--epochs",
    "3",
    "--parzen-every",
    "0",
]


def start(args: list[str], data_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "gannet", *args, "--data-dir", str(data_dir)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def wait_for_step(run_dir: Path, step: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        path = run_dir / "metrics.jsonl"
        if path.exists() and any(json.loads(line)["step"] >= step for line in path.read_text().splitlines()):
            return
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"step {step} not reached")


def assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical weights, optimiser state and RNG state, and the same metrics."""
    (wa, _, pa), (wb, _, pb) = load_weights(a), load_weights(b)
    assert pa.name == pb.name and all(torch.equal(wa[k], wb[k]) for k in wa)
    sa, sb = load_state(pa), load_state(pb)
    for player in ("optimizer_g", "optimizer_d"):
        for key, buffers in sa[player]["state"].items():
            assert torch.equal(buffers["momentum_buffer"], sb[player]["state"][key]["momentum_buffer"])
    for rng in ("rng_torch", "rng_data"):
        assert torch.equal(sa[rng], sb[rng])
    assert sa["rng_python"] == sb["rng_python"] and torch.equal(sa["rng_numpy"][1], sb["rng_numpy"][1])
    assert timeless(read_metrics(a)) == timeless(read_metrics(b))


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data_dir):
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    process = start([*RUN, "--run-dir", str(run_dir)], data_dir)
    assert process.wait(timeout=300) == 0, process.stderr.read()
    return run_dir


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_checkpoints_mid_epoch_and_the_resumed_run_is_identical(straight, tmp_path, data_dir, signum, code):
    run_dir = tmp_path / "run"
    process = start([*RUN, "--run-dir", str(run_dir)], data_dir)
    wait_for_step(run_dir, 26, process)  # inside epoch 2
    process.send_signal(signum)
    assert process.wait(timeout=120) == code
    message = process.stderr.read()
    assert f"{signal.Signals(signum).name} received: stopped after step" in message
    assert f"gannet train --resume {run_dir}" in message and "Traceback" not in message
    newest = checkpoints.checkpoint_paths(run_dir)[-1]
    assert newest.name.startswith("epoch-0001-step-")  # one epoch done, stopped inside the second
    assert gannet("train", "--resume", run_dir)[0] == 0
    assert_same_run(straight, run_dir)


def test_kill_9_loses_at_most_one_checkpoint_interval(straight, tmp_path, data_dir):
    run_dir = tmp_path / "run"
    process = start([*RUN, "--run-dir", str(run_dir)], data_dir)
    wait_for_step(run_dir, 30, process)  # epoch 1's checkpoint is written at step 20
    process.kill()
    process.wait(timeout=60)
    newest = checkpoints.checkpoint_paths(run_dir)[-1]
    assert newest.name == "epoch-0001.safetensors"
    resumed = subprocess.run(
        [sys.executable, "-m", "gannet", "train", "--resume", str(run_dir), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # a fresh process
    assert resumed.returncode == 0, resumed.stderr
    steps = [m["step"] for m in read_metrics(run_dir) if "loss/d" in m]
    assert steps == sorted(set(steps)) and steps[-1] == 60  # continued from step 20, nothing logged twice
    assert_same_run(straight, run_dir)


def test_a_nan_stops_the_run_naming_the_step_and_leaves_the_checkpoint_untouched(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "toy"
    assert gannet("train", "toy1d", "--epochs", 1, "--run-dir", run_dir, "--no-progress")[0] == 0
    path = checkpoints.checkpoint_paths(run_dir)[-1]

    def poisoned(source):  # the weights go bad once loaded (a file holding NaN is refused on loading)
        tensors, metadata, found = load_weights(source)
        return {**tensors, "discriminator.output.bias": torch.tensor([float("nan")])}, metadata, found

    monkeypatch.setattr(checkpoints, "load_weights", poisoned)
    before = path.read_bytes()
    code, out = gannet("train", "--resume", run_dir, "--epochs", 2, capsys=capsys)
    assert code == 2
    assert "The discriminator's loss became NaN or infinite at step 101" in out.err
    assert "the last checkpoint, epoch-0001.safetensors, is untouched" in out.err
    assert path.read_bytes() == before and checkpoints.checkpoint_paths(run_dir) == [path]


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    real_fsync, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) > 4:  # epoch 1 writes 2 files (+ 2 folder syncs); epoch 2's first write fails
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(checkpoints.os, "fsync", fsync)
    run_dir = tmp_path / "toy"
    with pytest.raises(
        GannetError,
        match=r"Could not write checkpoint epoch-0002.safetensors \(No space left on "
        r"device\); the last checkpoint, epoch-0001.safetensors, is intact",
    ):
        train(preset_config("toy1d", epochs=2), run_dir, progress_bar=False)
    monkeypatch.setattr(checkpoints.os, "fsync", real_fsync)
    assert [p.name for p in checkpoints.checkpoint_paths(run_dir)] == ["epoch-0001.safetensors"]
    assert load_state(checkpoints.checkpoint_paths(run_dir)[0])["step"] == 100
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]  # no temporary files


@pytest.mark.parametrize(
    "values, message",
    [
        ({"bogus": 1}, "Unknown config key(s): bogus."),
        ({"lr": "fast"}, "'lr' must be float, not 'fast'."),
        ({"generator_hidden": 1200}, "'generator_hidden' must be a list of int"),
        ({"lr": -0.1}, "--lr must be a positive number."),
        ({"k": 0}, "--k must be at least 1."),
        ({"momentum": 1.5}, "momentum must be in [0, 1)."),
        ({"update": "sometimes"}, "--update must be one of simultaneous, alternating."),
    ],
)
def test_bad_configs_are_one_sentence_and_write_nothing(tmp_path, values, message, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**config_module.TrainConfig().to_dict(), **values}))
    code, out = gannet("train", "--config", path, "--run-dir", tmp_path / "run", capsys=capsys)
    assert code == 2 and message in out.err and out.err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_batch_larger_than_the_data_is_refused(tmp_path, tiny_dir, capsys):
    code, out = gannet(
        "train",
        "mnist",
        "--train-limit",
        50,
        "--batch-size",
        100,
        "--data-dir",
        tiny_dir,
        "--run-dir",
        tmp_path / "r",
        capsys=capsys,
    )
    assert code == 2 and "One step needs 100 training examples" in out.err and "training set has 50" in out.err


# --- fuzz --------------------------------------------------------------------------------------


def mutations(seed: int, original: bytes, count: int):
    """Random byte strings, truncations, and copies with a few bytes changed."""
    rng = random.Random(seed)
    for i in range(count):
        kind = i % 3
        if kind == 0:
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        elif kind == 1:
            yield original[: rng.randrange(len(original))]
        else:
            data = bytearray(original)
            for _ in range(rng.randrange(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            yield bytes(data)


def only_clear_errors(load, cases) -> dict[str, int]:
    """Run `load` on each case: it may succeed or raise GannetError, nothing else, and fast."""
    outcomes = {"loaded": 0, "refused": 0}
    for case in cases:
        started = time.monotonic()
        try:
            load(case)
            outcomes["loaded"] += 1
        except GannetError as error:
            assert str(error).strip() and "\n" not in str(error)
            outcomes["refused"] += 1
        assert time.monotonic() - started < 10
    return outcomes


def test_fuzzed_data_files_end_in_a_clear_error(tmp_path, tiny_dir):
    name = "t10k-labels-idx1-ubyte"
    original = (tiny_dir / "mnist" / f"{name}.gz").read_bytes()
    raw = gzip.decompress(original)
    path = tmp_path / f"{name}.gz"

    def load(data):
        path.write_bytes(data)
        read_mnist_file(path, name)

    outcomes = only_clear_errors(load, [*mutations(1, original, 60), *mutations(2, raw, 30)])
    assert outcomes == {"loaded": 0, "refused": 90}  # every change to MNIST is caught by its checksum


def test_fuzzed_checkpoints_and_states_end_in_a_clear_error(mnist_run, tmp_path):
    path = checkpoints.checkpoint_paths(mnist_run)[-1]
    weights, state = path.read_bytes(), checkpoints.state_path(path).read_bytes()
    target = tmp_path / "epoch-0001.safetensors"

    def load_weights_bytes(data):
        target.write_bytes(data)
        tensors, metadata, _ = load_weights(target)
        checkpoints.checkpoint_config(metadata, target)

    def load_state_bytes(data):
        checkpoints.state_path(target).write_bytes(data)
        load_state(target)

    # every change is refused: the SHA-256s in the weights' metadata cover tensors, config and state
    assert only_clear_errors(load_weights_bytes, mutations(3, weights, 45)) == {"loaded": 0, "refused": 45}
    target.write_bytes(weights)
    assert only_clear_errors(load_state_bytes, mutations(4, state, 45)) == {"loaded": 0, "refused": 45}


def test_fuzzed_configs_end_in_a_clear_error(tmp_path):
    original = json.dumps(config_module.TrainConfig().to_dict()).encode()
    path = tmp_path / "config.json"

    def load(data):
        path.write_bytes(data)
        config_module.load(path)

    rng = random.Random(5)
    typed = [
        json.dumps(
            {**json.loads(original), k: rng.choice([None, "x", -1, 1e308, [1], {}, True, float("nan")])}
        ).encode()
        for k in config_module.FIELDS
        for _ in range(2)
    ]
    outcomes = only_clear_errors(load, [*mutations(6, original, 60), *typed])
    assert outcomes["refused"] >= 60


def test_a_run_checkpointed_before_mid_epoch_states_still_resumes(tmp_path):
    """Early checkpoints (format 1) had no digests and no progress / NumPy / Python RNG state."""
    run_dir = tmp_path / "toy"
    assert gannet("train", "toy1d", "--epochs", 1, "--run-dir", run_dir, "--no-progress")[0] == 0
    path = checkpoints.checkpoint_paths(run_dir)[-1]
    state = load_state(path)
    old_state = {k: v for k, v in state.items() if k not in ("progress", "rng_numpy", "rng_python")}
    buffer = __import__("io").BytesIO()
    torch.save(old_state, buffer)
    checkpoints.state_path(path).write_bytes(buffer.getvalue())
    tensors, metadata, _ = load_weights(path)
    old = {k: v for k, v in metadata.items() if k not in ("sha256", "state_sha256")} | {"format_version": "1"}
    checkpoints.write_atomic(path, checkpoints.safetensors_bytes(tensors, metadata=old))
    assert gannet("train", "--resume", run_dir, "--epochs", 2)[0] == 2  # no digest: refused unless asked
    assert gannet("train", "--resume", run_dir, "--epochs", 2, "--allow-unverified")[0] == 0
    assert [m["step"] for m in read_metrics(run_dir)][-1] == 200


def test_a_second_ctrl_c_stops_at_once_and_keeps_a_whole_checkpoint(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    process = start([*RUN, "--run-dir", str(run_dir)], data_dir)
    wait_for_step(run_dir, 24, process)
    process.send_signal(signal.SIGINT)
    time.sleep(0.02)  # the second arrives while the step finishes or the checkpoint is written
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130
    assert "Traceback" not in process.stderr.read()
    folder = run_dir / "checkpoints"
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary file left
    newest = checkpoints.checkpoint_paths(run_dir)[-1]  # the epoch-1 one, or the new mid-epoch one
    load_state(newest)
    assert gannet("train", "--resume", run_dir)[0] == 0


def test_a_collapsed_game_is_told_once_after_ten_epochs_of_rejections():
    watch = CollapseWatch()
    # a dip that recovers (the preset's early phase), then D rejecting every sample from epoch 8
    fakes = {1: 0.29, 2: 0.05, 3: 0.0009, 4: 0.0005, 5: 0.002, 6: 0.01, 7: 0.2} | {e: 1e-5 for e in range(8, 30)}
    told = [epoch for epoch, d_fake in fakes.items() if watch.update(epoch, d_fake)]
    assert told == [17] and watch.since == 8  # epochs 8..17: ten in a row, said once
    again = CollapseWatch(below=0.01, epochs=2)
    assert [again.update(e, f) for e, f in [(1, 0.005), (1, float("nan")), (2, 0.005), (3, 0.001)]] == [
        False,
        False,  # NaN is no rejection: the count starts again
        False,
        True,
    ]


def test_training_says_once_that_the_game_has_collapsed(tmp_path, monkeypatch, capsys):
    # every epoch counts as a rejection here (D(G(z)) < 1), so the line comes after epoch 2
    train_module = importlib.import_module("gannet.train")  # gannet.train is also the function
    monkeypatch.setattr(train_module, "CollapseWatch", lambda: CollapseWatch(below=1.0, epochs=2))
    code, out = gannet("train", "toy1d", "--epochs", 4, "--run-dir", tmp_path / "r", "--no-progress", capsys=capsys)
    assert code == 0
    lines = out.err.splitlines()
    told = [i for i, line in enumerate(lines) if "the game has collapsed" in line]
    assert len(told) == 1 and lines[told[0] - 1].startswith("epoch 2/4") and "since epoch 1" in lines[told[0]]
    assert "try another --seed" in lines[told[0]]
