"""torch.distributed: two processes on this CPU with gloo, launched by torchrun as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from gannet import distributed
from gannet.checkpoints import load_state
from gannet.errors import GannetError
from gannet.metrics import read_metrics
from gannet.networks import build_networks
from gannet.presets import preset_config
from tests.conftest import gannet, timeless

NO_DROPOUT = ["--input-keep", 1, "--hidden-keep", 1]


def small(data_dir):
    # on CPUs (gloo) also where a GPU is present: one GPU cannot host both ranks
    return [
        *("--train-limit", 400, "--log-every", 2, "--no-progress", "--parzen-every", 0),
        "--device",
        "cpu",
        "--data-dir",
        data_dir,
    ]


def torchrun(*args, nproc=2):
    """`torchrun --standalone --nproc-per-node N -m gannet ARGS`, one OpenMP thread per process."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    command += ["-m", "gannet", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def weights(run_dir, epoch):
    return load_file(run_dir / "checkpoints" / f"epoch-{epoch:04d}.safetensors")


def test_each_rank_takes_its_share_of_every_minibatch():
    rows = torch.arange(12)  # two minibatches of 6 (Algorithm 1 with k = 2)
    two = [distributed.Cluster(rank, 2, rank) for rank in (0, 1)]
    assert distributed.my_slice(rows, two[0], groups=2).tolist() == [0, 1, 2, 6, 7, 8]
    assert distributed.my_slice(rows, two[1], groups=2).tolist() == [3, 4, 5, 9, 10, 11]
    assert distributed.my_slice(rows, None, groups=2).tolist() == rows.tolist()


def test_a_global_batch_that_does_not_divide_is_one_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(GannetError, match="--batch-size 100 is the global batch and must divide evenly among the 3"):
        distributed.join(preset_config("mnist"))
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize("update", ["simultaneous", "alternating"])
def test_two_processes_make_the_single_process_updates(tmp_path, data_dir, update):
    """Without dropout the maths is the same: each rank's slice of the global batch and of its
    z, gradients averaged by DDP = one process's gradient over the whole batch (to rounding)."""
    args = ["train", "mnist", "--epochs", 1, "--update", update, *NO_DROPOUT, *small(data_dir)]
    code, _ = gannet(*args, "--run-dir", tmp_path / "one")
    assert code == 0
    torchrun(*args, "--run-dir", tmp_path / "two")
    one, two = weights(tmp_path / "one", 1), weights(tmp_path / "two", 1)
    assert one.keys() == two.keys()
    for name in one:
        assert torch.allclose(one[name], two[name], rtol=1e-5, atol=1e-7), name
    torch.manual_seed(0)  # the runs' seed: the weights they started from
    _, start = build_networks(preset_config("mnist", input_keep=1.0, hidden_keep=1.0), 784)
    moved = (start.hidden[0].linear.weight - two["discriminator.hidden.0.linear.weight"]).abs().max()
    assert moved > 1e-5  # 100x the tolerance: the comparison is of trained weights, not of the initial ones
    rows = [
        [json.loads(line) for line in (tmp_path / r / "metrics.jsonl").read_text().splitlines()] for r in ("one", "two")
    ]
    ends = [[r for r in run if "time/elapsed" in r] for run in rows]  # the epoch's end, on record once
    assert [[r["epoch"] for r in run] for run in ends] == [[1], [1]]
    rows = [[r for r in run if "loss/d" in r] for run in rows]
    assert len(rows[0]) == len(rows[1]) == 2  # 4 steps, a record every 2: written once, by rank 0
    for a, b in zip(*rows):
        assert a["step"] == b["step"] and abs(a["loss/d"] - b["loss/d"]) < 1e-4  # averaged over the ranks


def test_with_dropout_the_ranks_stay_identical_and_a_resume_is_exact(tmp_path, data_dir):
    """Dropout masks differ per rank (and from one process): what is compared instead is that
    both ranks hold bit-identical weights (SHA-256 of each rank's, recorded in every checkpoint)
    and that stopping after epoch 1 and resuming gives the uninterrupted run's weights exactly."""
    args = ["train", "mnist", *small(data_dir)]
    torchrun(*args, "--epochs", 2, "--run-dir", tmp_path / "straight")
    state = load_state(tmp_path / "straight" / "checkpoints" / "epoch-0002.safetensors")
    digests = state["rank_weights_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1] and len(state["rng_ranks"]) == 2
    torchrun(*args, "--epochs", 1, "--run-dir", tmp_path / "resumed")
    torchrun("train", "--resume", tmp_path / "resumed", "--epochs", 2, "--no-progress")
    straight, resumed = weights(tmp_path / "straight", 2), weights(tmp_path / "resumed", 2)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert timeless(read_metrics(tmp_path / "straight")) == timeless(read_metrics(tmp_path / "resumed"))


def test_checkpoints_cross_between_one_and_two_processes(tmp_path, data_dir, capsys):
    args = ["train", "mnist", *small(data_dir), "--epochs", 1]
    code, _ = gannet(*args, "--run-dir", tmp_path / "single")
    assert code == 0
    torchrun("train", "--resume", tmp_path / "single", "--epochs", 2, "--no-progress")  # one process -> two
    assert (tmp_path / "single" / "checkpoints" / "epoch-0002.safetensors").is_file()
    torchrun(*args, "--run-dir", tmp_path / "multi")
    code, _ = gannet("train", "--resume", tmp_path / "multi", "--epochs", 2, "--no-progress", capsys=capsys)
    assert code == 0  # two processes -> one
    code, _ = gannet("sample", tmp_path / "multi", "-n", 4, "--npy", tmp_path / "s.npy", capsys=capsys)
    assert code == 0


def test_sigterm_stops_every_rank_at_the_same_step_with_a_checkpoint(tmp_path, data_dir):
    """torchrun passes SIGTERM to its workers; they agree on the step to stop at, write one
    mid-epoch checkpoint together and exit 143; the run resumes from it."""
    import signal
    import time

    run = tmp_path / "run"
    args = ["train", "mnist", *small(data_dir), "--train-limit", 20_000, "--epochs", 1, "--run-dir", run]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "gannet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([*command, *map(str, args)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 3) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    saved = sorted((run / "checkpoints").glob("epoch-0000-step-*.safetensors"))
    assert len(saved) == 1, err.decode()[-2000:]
    assert "SIGTERM received: stopped after step" in err.decode()
    state = load_state(saved[0])
    assert state["rank_weights_sha256"][0] == state["rank_weights_sha256"][1]  # both stopped at that step
    torchrun("train", "--resume", run, "--no-progress")
    assert (run / "checkpoints" / "epoch-0001.safetensors").is_file()


def test_more_gpu_processes_than_gpus_is_one_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(GannetError, match="Process 1 of this machine has no GPU of its own"):
        distributed.join(preset_config("mnist", device="cuda"))
    assert not torch.distributed.is_initialized()
