"""The writer thread that takes an epoch's checkpoint, averages and picture off the training path
(background.py), and what a run written through it guarantees."""

import errno
import importlib
import os
import signal
import threading
import time
from collections import namedtuple

import pytest
import torch

from gannet import checkpoints
from gannet.background import BackgroundWriter, snapshot
from gannet.checkpoints import load_weights
from gannet.metrics import read_metrics

from .conftest import SMALL_MNIST, gannet

train_module = importlib.import_module("gannet.train")  # gannet.train is also the function's name


def test_a_snapshot_is_a_copy_the_live_tensors_cannot_change():
    Pair = namedtuple("Pair", "weight count")
    live = {"w": torch.ones(3), "state": [torch.zeros(2), (1, "a", None)], "pair": Pair(torch.ones(1), 2)}
    copy = snapshot(live)
    live["w"].add_(1)
    live["state"][0].add_(5)
    live["pair"].weight.add_(1)
    assert torch.equal(copy["w"], torch.ones(3)) and torch.equal(copy["state"][0], torch.zeros(2))
    assert copy["state"][1] == (1, "a", None)
    assert (
        isinstance(copy["pair"], Pair) and torch.equal(copy["pair"].weight, torch.ones(1)) and copy["pair"].count == 2
    )


def test_pieces_run_in_order_on_the_writer_thread_while_the_caller_goes_on():
    done, gate = [], threading.Event()
    writer = BackgroundWriter()
    writer.submit([lambda: gate.wait(30), lambda: done.append(threading.current_thread().name)])
    assert writer.busy and done == []  # submit returned with the work still in progress
    gate.set()
    writer.submit([lambda: done.append("second")])  # begins once the first submission is written
    writer.wait()
    assert done == ["gannet-writer", "second"] and not writer.busy


def test_a_failed_piece_stops_the_rest_and_its_error_is_raised_once_by_wait():
    ran = []

    def full_disk():
        raise OSError(errno.ENOSPC, "No space left on device", "epoch-0003.safetensors")

    writer = BackgroundWriter()
    writer.submit([full_disk, lambda: ran.append("after")])
    with pytest.raises(OSError, match="No space left on device"):
        writer.wait()
    assert ran == []
    writer.wait()  # the error was handed over once


def test_training_goes_on_while_a_checkpoint_is_written_and_the_checkpoint_holds_its_epoch(
    tmp_path, monkeypatch, tiny_dir
):
    """Epoch 1's checkpoint is held back until epoch 2 has been played: it is written while the
    weights and the optimiser's state change, and a run branched from it must still train to
    the very weights of the run itself."""
    save, play_epoch = checkpoints.save, train_module.Loop.play_epoch
    epoch_2_played, writers, overlapped = threading.Event(), set(), []

    def slow_save(run_dir, weights, state, *args, **kwargs):
        writers.add(threading.current_thread().name)
        if state["epoch"] == 1:
            overlapped.append(epoch_2_played.wait(60))  # a synchronous write would wait in vain
        return save(run_dir, weights, state, *args, **kwargs)

    def play_and_tell(self, stop):
        means = play_epoch(self, stop)
        if self.run.progress.epoch == 2:
            epoch_2_played.set()
        return means

    monkeypatch.setattr(checkpoints, "save", slow_save)
    monkeypatch.setattr(train_module.Loop, "play_epoch", play_and_tell)
    run_dir, branch = tmp_path / "run", tmp_path / "branch"
    common = ["--epochs", 3, "--keep-checkpoints", 3, "--data-dir", tiny_dir, *SMALL_MNIST]
    assert gannet("train", "mnist", "--average-from", 1, "--run-dir", run_dir, *common)[0] == 0
    assert overlapped == [True] and writers == {"gannet-writer"}
    assert sorted(p.name for p in (run_dir / "samples").glob("*.png")) == [f"epoch-000{e}.png" for e in (1, 2, 3)]
    first = checkpoints.checkpoint_paths(run_dir)[0]
    assert first.name == "epoch-0001.safetensors"
    assert gannet("train", "--resume", first, "--run-dir", branch, "--no-progress")[0] == 0
    straight, branched = load_weights(run_dir)[0], load_weights(branch)[0]
    assert all(torch.equal(straight[k], branched[k]) for k in straight)
    mean, mean_branched = (
        load_weights(checkpoints.average_path(run_dir))[0],
        load_weights(branch / "checkpoints" / "average.safetensors")[0],
    )
    assert all(torch.equal(mean[k], mean_branched[k]) for k in mean)


def test_a_signal_while_the_last_epochs_files_are_written_waits_for_them(tmp_path, monkeypatch, capsys, tiny_dir):
    """Ctrl-C or SIGTERM as the run ends, its last checkpoint still being written: the run says
    it is complete, and the checkpoint it names is whole on disk."""
    save = checkpoints.save

    def signalled_save(run_dir, weights, state, *args, **kwargs):
        if state["epoch"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # handled by the training thread meanwhile
            time.sleep(0.2)
        return save(run_dir, weights, state, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "save", signalled_save)
    run_dir = tmp_path / "run"
    code, out = gannet(
        "train", "mnist", "--epochs", 2, "--data-dir", tiny_dir, "--run-dir", run_dir, *SMALL_MNIST, capsys=capsys
    )
    assert code == 143 and "Traceback" not in out.err
    assert "checkpoint epoch-0002.safetensors written; the run is complete" in out.err
    assert load_weights(run_dir)[2].name == "epoch-0002.safetensors"
    assert (run_dir / "samples" / "epoch-0002.png").is_file()


def test_a_failed_write_stops_the_run_at_the_next_metrics_record(tmp_path, monkeypatch, capsys, tiny_dir):
    def no_space(run_dir, weights, state, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", f"checkpoint epoch-{state['epoch']:04d}.safetensors")

    monkeypatch.setattr(checkpoints, "save", no_space)
    run_dir = tmp_path / "run"
    code, out = gannet(
        "train", "mnist", "--epochs", 4, "--data-dir", tiny_dir, "--run-dir", run_dir, *SMALL_MNIST, capsys=capsys
    )
    assert code == 2 and "Traceback" not in out.err
    assert "Could not write checkpoint epoch-0001.safetensors (No space left on device)" in out.err
    # epoch 1's write failed as epoch 2 began (10 steps, a record every 5): the run stopped at its
    # first record, step 15, not at the end of epoch 2 when the next files were handed over
    assert max(m["step"] for m in read_metrics(run_dir)) == 15
