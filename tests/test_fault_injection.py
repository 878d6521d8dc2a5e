"""Faults injected into real runs (issue 20): a run directory has one owner, --force deletes only
gannet's own folders, and every stop path (kill -9, a full disk, a signal at any moment, a NaN)
keeps the last good checkpoint, leaves no temporary files and says what to run next."""

from __future__ import annotations

import errno
import importlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gannet import checkpoints, runs
from gannet.checkpoints import load_state
from gannet.metrics import read_metrics

from .conftest import SMALL_MNIST, gannet

train = importlib.import_module("gannet.train")  # the module (gannet.train is also the function)

TOY = ["train", "toy1d", "--no-progress"]  # 100 steps an epoch, no data files


def run_cli(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "gannet", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env
    )


def one_sentence(err: str) -> str:
    """The error line of a failed command: exactly one, and no traceback."""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("gannet: error:")]
    assert len(errors) == 1, err
    return errors[0]


def logged_steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in read_metrics(run_dir) if "loss/d" in r]


def temporary_files(run_dir: Path) -> list[Path]:
    return [p for p in Path(run_dir).rglob(".*.tmp")]


# --- who may use a run directory -------------------------------------------------------------


@pytest.mark.parametrize("name", ["", ".", ".."])
def test_force_never_empties_the_working_folder_or_a_parent(tmp_path, monkeypatch, capsys, name):
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.tex").write_text("years of work")
    monkeypatch.chdir(work)
    code, out = gannet(*TOY, "--epochs", 1, "--run-dir", name, "--force", capsys=capsys)
    assert code == 2 and "is the working folder or one of its parents" in one_sentence(out.err)
    assert (work / "thesis.tex").read_text() == "years of work" and sorted(os.listdir(work)) == ["thesis.tex"]


def test_two_runs_started_together_on_one_folder_one_trains_the_other_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "gannet", *TOY, "--epochs", 3, "--run-dir", run_dir]
    processes = [
        subprocess.Popen(list(map(str, command)), stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in processes]
    assert sorted(code for code, _ in results) == [0, 2]
    refused = next(err for code, err in results if code == 2)
    assert "is in use by gannet process" in one_sentence(refused) or "already exists" in refused
    assert [p.name for p in checkpoints.checkpoint_paths(run_dir)][-1] == "epoch-0003.safetensors"
    assert logged_steps(run_dir) == list(range(50, 301, 50))  # one run's records (toy1d logs every 50 steps)


def test_a_resume_or_force_while_the_run_trains_is_refused_naming_its_process(tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli(*TOY, "--epochs", 1, "--run-dir", run_dir).returncode == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    owner = subprocess.Popen(
        [sys.executable, "-m", "gannet", "train", "--resume", str(run_dir), "--epochs", "40", "--no-progress"],
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not checkpoints.checkpoint_paths(run_dir)[-1].name.startswith("epoch-0002"):
            assert time.monotonic() < deadline and owner.poll() is None
            time.sleep(0.1)
        for args in (["train", "--resume", run_dir, "--epochs", 50], [*TOY, "--run-dir", run_dir, "--force"]):
            result = run_cli(*args)
            assert result.returncode == 2
            assert f"is in use by gannet process {owner.pid}" in one_sentence(result.stderr)
    finally:
        owner.send_signal(signal.SIGTERM)
        assert owner.wait(timeout=60) == 143
    newest = checkpoints.checkpoint_paths(run_dir)[-1]  # the owner's checkpoints are all there
    epoch = int(newest.name[len("epoch-") :][:4])  # epoch-0008.safetensors or epoch-0008-step-…: one more epoch
    assert run_cli("train", "--resume", run_dir, "--epochs", epoch + 1).returncode == 0


def test_a_lock_file_left_by_a_dead_process_does_not_block(tmp_path):
    run_dir = tmp_path / "run"
    assert gannet(*TOY, "--epochs", 1, "--run-dir", run_dir)[0] == 0
    (run_dir / runs.LOCK_NAME).write_text("gannet process 999999 on elsewhere")  # its owner is gone
    assert gannet("train", "--resume", run_dir, "--epochs", 2, "--no-progress")[0] == 0


# --- kill -9 at random moments ----------------------------------------------------------------


def test_kill_9_at_random_moments_loses_nothing_but_the_unfinished_epoch(tmp_path):
    rng = random.Random(20)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for trial in range(4):
        run_dir = tmp_path / f"run{trial}"
        process = subprocess.Popen(
            [sys.executable, "-m", "gannet", *TOY, "--epochs", "4", "--run-dir", str(run_dir)],
            stderr=subprocess.DEVNULL,
            env=env,
        )
        time.sleep(rng.uniform(1.0, 6.0))  # before, during or after start-up, mid-epoch or mid-write
        process.kill()
        process.wait(timeout=30)
        if checkpoints.checkpoint_paths(run_dir):
            result = run_cli("train", "--resume", run_dir)
        else:  # killed before its first checkpoint: nothing to resume, --force starts it again
            result = run_cli(*TOY, "--epochs", 4, "--run-dir", run_dir, "--force")
        assert result.returncode == 0, result.stderr
        assert logged_steps(run_dir) == list(range(50, 401, 50))  # every record once
        assert not temporary_files(run_dir)
        load_state(checkpoints.checkpoint_paths(run_dir)[-1])


def test_temporary_files_of_a_killed_writer_are_removed_on_resume(tmp_path):
    run_dir = tmp_path / "run"
    assert gannet(*TOY, "--epochs", 1, "--run-dir", run_dir)[0] == 0
    leftovers = [
        run_dir / "checkpoints" / ".epoch-0002.safetensors.x1y2z3w4.tmp",
        run_dir / "samples" / ".epoch-0002.ab_cd9ef.png",
    ]
    for leftover in leftovers:
        leftover.write_bytes(b"\0" * 1000)
    (run_dir / ".notes").write_text("a user's own hidden file")
    assert gannet("train", "--resume", run_dir, "--epochs", 2, "--no-progress")[0] == 0
    assert not any(leftover.exists() for leftover in leftovers)
    assert (run_dir / ".notes").read_text() == "a user's own hidden file"


# --- a full disk ------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 600 KiB tmpfs (root only; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_run_in_one_sentence_and_the_run_resumes_once_space_is_freed(small_disk, capsys):
    run_dir = small_disk / "run"
    code, out = gannet(*TOY, "--epochs", 30, "--keep-checkpoints", 30, "--run-dir", run_dir, capsys=capsys)
    assert code == 2
    line = one_sentence(out.err)
    assert "No space left on device" in line and "is intact" in line and f"--resume {run_dir}" in line
    assert not temporary_files(run_dir)
    newest = checkpoints.checkpoint_paths(run_dir)[-1]
    finished = load_state(newest)["epoch"]  # the last checkpoint is whole
    assert 1 <= finished < 30
    for old in checkpoints.checkpoint_paths(run_dir)[:-1]:  # free space: drop all but the newest
        old.unlink()
        checkpoints.state_path(old).unlink()
    assert gannet("train", "--resume", run_dir, "--epochs", finished + 1, "--keep-checkpoints", 1)[0] == 0


def test_a_full_disk_while_writing_best_safetensors_is_one_sentence(tmp_path, monkeypatch, capsys, tiny_dir):
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "best.safetensors")

    monkeypatch.setattr(checkpoints, "save_best", no_space)
    run_dir = tmp_path / "run"
    code, out = gannet(
        "train", "mnist", "--epochs", 1, "--data-dir", tiny_dir, "--run-dir", run_dir, *SMALL_MNIST, capsys=capsys
    )
    assert code == 2
    line = one_sentence(out.err)
    assert "Could not write best.safetensors (No space left on device)" in line
    assert f"nothing to resume: start again with --force --run-dir {run_dir}" in line


# --- signals, NaN, and what a stop says next ---------------------------------------------------


def test_sigterm_between_a_nan_and_the_next_record_writes_no_checkpoint(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    assert gannet(*TOY, "--epochs", 1, "--run-dir", run_dir)[0] == 0
    kept = checkpoints.checkpoint_paths(run_dir)[0]
    before = kept.read_bytes()
    # a SIGTERM at step 150, long before epoch 2's first metrics record (log-every 1000) reads the flags
    monkeypatch.setattr(train.Loop, "stopping", lambda self, stop: self.run.progress.step >= 150)
    monkeypatch.setattr(train.signal, "Signals", lambda signum: signal.SIGTERM)
    code, out = gannet(
        "train", "--resume", run_dir, "--epochs", 2, "--lr-milestones", 1, "--lr-gamma", 1e12,
        "--log-every", 1000, "--no-progress", capsys=capsys,
    )  # fmt: skip
    assert code == 2 and "became NaN or infinite" in one_sentence(out.err)
    assert checkpoints.checkpoint_paths(run_dir) == [kept] and kept.read_bytes() == before


def test_a_signal_during_the_last_epochs_end_is_obeyed(tmp_path, monkeypatch, capsys):
    report = train.Loop.report

    def report_then_signal(self, *args):
        report(self, *args)
        if self.run.progress.epoch == self.run.config.epochs:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while the picture is written

    monkeypatch.setattr(train.Loop, "report", report_then_signal)
    run_dir = tmp_path / "run"
    code, out = gannet(*TOY, "--epochs", 2, "--run-dir", run_dir, capsys=capsys)
    assert code == 143
    assert "SIGTERM received: stopped after step 200, checkpoint epoch-0002.safetensors written" in out.err
    assert "the run is complete" in out.err and "Traceback" not in out.err


@pytest.mark.parametrize("moment", ["gannet: training", "epoch 1/"])  # start-up; inside the loop
def test_sigterm_twice_is_announced_and_exits_143(tmp_path, moment):
    """Two SIGTERMs (as impatient scripts send) before the training loop began, or inside it,
    once killed the process unannounced (exit -15): the first before the loop, the second after
    the run had stopped and restored the default handler."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "gannet", *TOY, "--epochs", "50", "--run-dir", str(run_dir)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    while not process.stderr.readline().startswith(moment):
        assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    err = process.stderr.read()
    assert process.wait(timeout=60) == 143 and "Traceback" not in err
    assert ("gannet: terminated" if moment.startswith("gannet") else "SIGTERM received: stopped") in err
    assert not run_dir.exists() or (run_dir / "checkpoints").exists()


def test_ctrl_c_before_the_run_began_says_run_it_again_not_resume(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("gannet.start"), "dataset_for", interrupted)
    code, out = gannet(*TOY, "--run-dir", tmp_path / "run", capsys=capsys)
    assert code == 130 and not (tmp_path / "run").exists()  # claimed only once the data is there
    assert f"nothing was written to {tmp_path / 'run'}: run the same command again" in out.err
    assert "--resume" not in out.err and "--force" not in out.err


def test_a_branch_that_fails_to_begin_leaves_no_folder_and_can_be_retried(tmp_path, monkeypatch, capsys):
    source, branch = tmp_path / "source", tmp_path / "branch"
    assert gannet(*TOY, "--epochs", 1, "--run-dir", source)[0] == 0

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(runs.shutil, "copy2", no_space)
        code, out = gannet("train", "--resume", source, "--run-dir", branch, "--epochs", 2, capsys=capsys)
    assert code == 2 and "Could not begin the branch" in one_sentence(out.err)
    assert not branch.exists()
    assert gannet("train", "--resume", source, "--run-dir", branch, "--epochs", 2, "--no-progress")[0] == 0


def test_epochs_below_the_runs_own_are_refused_and_the_config_kept(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert gannet(*TOY, "--epochs", 2, "--run-dir", run_dir)[0] == 0
    config = (run_dir / "config.json").read_text()
    code, out = gannet("train", "--resume", run_dir, "--epochs", 1, capsys=capsys)
    assert code == 2 and "has finished 2 epochs already; --epochs cannot go below that" in one_sentence(out.err)
    assert (run_dir / "config.json").read_text() == config


def test_a_half_written_last_metrics_line_is_dropped_by_resume_and_figures(tmp_path):
    run_dir = tmp_path / "run"
    assert gannet(*TOY, "--epochs", 1, "--run-dir", run_dir)[0] == 0
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"step": 150, "loss/d": 0.6')  # the process died mid-record
    assert gannet("figures", "curves", run_dir, "-o", tmp_path / "curves.png")[0] == 0
    assert gannet("train", "--resume", run_dir, "--epochs", 2, "--no-progress")[0] == 0
    assert logged_steps(run_dir) == [50, 100, 150, 200]
    assert all(json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines())


# --- crafted training states (digests recomputed, as a deliberate edit would) --------------------


def rewrite_checkpoint(path: Path, state: dict | None = None, **metadata: str) -> None:
    import hashlib
    import io

    import torch

    tensors, old, _ = checkpoints.load_weights(path)
    old = {k: v for k, v in old.items() if k != "sha256"}
    if state is not None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        checkpoints.state_path(path).write_bytes(buffer.getvalue())
        old["state_sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    checkpoints._write_weights(path, tensors, {**old, **metadata})


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda state: state.pop("optimizer_g"), "do not fit this run ('optimizer_g')"),
        (lambda state: state["progress"].update(epoch="3"), "progress counters are not whole numbers"),
        (lambda state: state.update(rng_data=torch_zeros()), "do not fit this run"),
        # each was a traceback once training began (the digests were recomputed, as an edit would)
        (lambda state: state.update(fixed_noise=torch_zeros().float()), "its fixed noise is not a finite"),
        (lambda state: state["progress"].update(best_parzen="high"), "best Parzen score 'high' is not a number"),
        (lambda state: state["progress"].update(seconds=-1.0), "its training time -1.0 is not a number of seconds"),
        (lambda state: state["progress"].update(averaged=3, average=None), "3 averaged epochs but holds no sums"),
        (lambda state: state["progress"].update(mid_epoch(order=10**9)), "does not fit an epoch of 100 steps"),
        (lambda state: state["progress"].update(mid_epoch(position=10**6)), "its position 1000000"),
        (lambda state: state.update(rng_numpy=["MT19937", [1, 2], 0, 0, 0.0]), "do not fit this run"),
    ],
)
def test_a_crafted_training_state_is_one_sentence(tmp_path, capsys, damage, words):
    run_dir = tmp_path / "run"
    assert gannet(*TOY, "--epochs", 1, "--run-dir", run_dir)[0] == 0
    path = checkpoints.checkpoint_paths(run_dir)[-1]
    state = load_state(path)
    damage(state)
    rewrite_checkpoint(path, state)
    code, out = gannet("train", "--resume", run_dir, "--epochs", 2, capsys=capsys)
    assert code == 2 and words in one_sentence(out.err)


def mid_epoch(position: int = 5, order: int | None = None) -> dict:
    """A toy1d state's progress fields inside an epoch (10,000 examples, 100 steps)."""
    import torch

    indices = torch.randperm(10_000) if order is None else torch.full((10_000,), order)
    return {
        "position": position,
        "order": indices,
        "total": torch.zeros(4),
        "interval": torch.zeros(4),
        "first_bad": torch.full((2,), -1),
    }


def torch_zeros():
    import torch

    return torch.zeros(3, dtype=torch.uint8)


@pytest.mark.parametrize("epoch", ["1.5", "²"])  # "²".isdigit() is True, int("²") a ValueError
def test_a_non_integer_epoch_in_the_metadata_is_one_sentence(tmp_path, capsys, epoch):
    run_dir = tmp_path / "run"
    assert gannet(*TOY, "--epochs", 1, "--run-dir", run_dir)[0] == 0
    path = checkpoints.checkpoint_paths(run_dir)[-1]
    rewrite_checkpoint(path, epoch=epoch)
    for args in (["train", "--resume", run_dir, "--epochs", 2], ["sample", path, "-o", tmp_path / "s.png"]):
        code, out = gannet(*args, capsys=capsys)
        assert code == 2 and f"its epoch {epoch!r} is not a number" in one_sentence(out.err)


def test_a_checkpoint_with_non_finite_weights_is_refused_by_every_command(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert gannet(*TOY, "--epochs", 1, "--run-dir", run_dir)[0] == 0
    path = checkpoints.checkpoint_paths(run_dir)[-1]
    tensors, metadata, _ = checkpoints.load_weights(path)
    tensors["generator.output.weight"][0, 0] = float("nan")  # digest recomputed: only the NaN is wrong
    checkpoints._write_weights(path, tensors, {k: v for k, v in metadata.items() if k != "sha256"})
    for args in (
        ["sample", run_dir, "-o", tmp_path / "s.png", "--npy", tmp_path / "s.npy"],
        ["average", run_dir, "--epochs", "1-1", "-o", tmp_path / "a.safetensors"],
        ["train", "--resume", run_dir, "--epochs", 2],
    ):
        code, out = gannet(*args, capsys=capsys)
        assert code == 2 and "NaN or infinite weights (in generator.output.weight)" in one_sentence(out.err), out.err
    assert not any(tmp_path.glob("s.*")) and not (tmp_path / "a.safetensors").exists()


def wait_for_handlers(pid: int, timeout: float = 30.0) -> None:
    """Wait until process `pid` catches SIGINT and SIGTERM (its SigCgt mask in /proc; where there
    is no /proc, a fixed wait). A loaded machine can take over a second to start Python."""
    status = Path(f"/proc/{pid}/status")
    if not status.is_file():
        time.sleep(0.3)
        return
    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        caught = next((line.split()[1] for line in status.read_text().splitlines() if line.startswith("SigCgt:")), "0")
        if int(caught, 16) & wanted == wanted:
            return
        time.sleep(0.005)
    raise AssertionError(f"process {pid} did not install its signal handlers in {timeout} s")


def test_a_signal_while_gannet_starts_with_stderr_closed_still_ends_by_its_status():
    """The start-up sentence cannot be written (its reader is gone): the exit status still says it."""
    command = Path(sys.executable).with_name("gannet")
    if not command.is_file():
        pytest.skip("the gannet command is not installed beside this Python")
    for signum in (signal.SIGINT, signal.SIGTERM):
        read_end, write_end = os.pipe()
        os.close(read_end)
        process = subprocess.Popen([str(command), "presets"], stdout=subprocess.DEVNULL, stderr=write_end)
        os.close(write_end)
        wait_for_handlers(process.pid)
        process.send_signal(signum)  # at once: torch is still being imported
        assert process.wait(timeout=60) == 128 + signum


def test_a_signal_while_gannet_starts_is_one_sentence_and_does_nothing(tmp_path):
    """Ctrl-C or SIGTERM in the first second, while torch is imported (the `gannet` command)."""
    command = Path(sys.executable).with_name("gannet")
    if not command.is_file():
        pytest.skip("the gannet command is not installed beside this Python")
    for i, delay in enumerate((0.0, 0.15, 0.3, 0.45)):
        run_dir = tmp_path / f"run{i}"
        process = subprocess.Popen(
            [str(command), *TOY, "--epochs", "1", "--run-dir", str(run_dir)], stderr=subprocess.PIPE, text=True
        )
        wait_for_handlers(process.pid)  # before them Python's own start-up: no program can answer a signal there
        time.sleep(delay)
        signum = signal.SIGINT if i % 2 else signal.SIGTERM
        process.send_signal(signum)
        code, err = process.wait(timeout=60), process.stderr.read()
        assert code == 128 + signum, err  # once -6 (SIGABRT), before stderr was shown here
        assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("gannet: ")
