"""A campaign of hostile cases against gannet's command line (docs/usage.md: "When things go wrong").

Every case builds what it needs in a fresh temporary folder (copies of two small runs trained
once, crafted checkpoints with recomputed digests, malformed files, tmpfs mounts), runs gannet
as a subprocess with a timeout and checks what must hold afterwards. Outcomes:

  ok         worked as a user expects
  refused    exit 2 with exactly one "gannet: error:" line and no traceback
  traceback  a Python traceback
  hang       ran past its timeout
  killed     killed by a signal it did not ask for (memory: every child is capped by RLIMIT_AS)
  wrong      exit 0 (or a message) but the result is wrong, or a bad value accepted
  data-loss  a user's file, a good checkpoint or metrics lost or replaced

    OMP_NUM_THREADS=1 nice -n 5 python scripts/fault_campaign.py [--only CATEGORY] [--list] [--json FILE]

Commands run in a child forked from this process after torch is imported (a subprocess all the
same, with its own exit status, stderr and memory cap, without ~1.5 s of imports each); the
concurrent ones (signals, kill -9, two runs at once) run the `gannet` command itself.
Needs root for the tmpfs cases (skipped, as ok with a note, otherwise).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

from gannet import checkpoints
from gannet.cli import main as gannet_main

DATA = Path(os.environ.get("GANNET_CAMPAIGN_DATA", "/work/shared/data"))
# the `gannet` command as users run it (its entry point turns a signal during start-up into a sentence)
_COMMAND = Path(sys.executable).with_name("gannet")
GANNET = [str(_COMMAND)] if _COMMAND.is_file() else [sys.executable, "-m", "gannet"]
MEMORY_CAP = 6 * 2**30  # RLIMIT_AS of every child: a runaway allocation fails instead of swapping the machine
MNIST_TINY = ["--data-dir", str(DATA), "--train-limit", "1000", "--parzen-every", "0", "--no-progress"]
TOY = ["toy1d", "--no-progress"]
ORDER = ["ok", "refused", "wrong", "traceback", "hang", "killed", "data-loss"]


# ---------------------------------------------------------------- running gannet


@dataclass
class Result:
    argv: list[str]
    rc: int | None  # None: timed out
    stdout: str
    stderr: str
    seconds: float

    def outcome(self, expect: str) -> tuple[str, str]:
        """(outcome, note) of one command; `expect`: ok, refused, any, or 'rc:N,M' (signals)."""
        if self.rc is None:
            return "hang", f"no exit after {self.seconds:.0f} s"
        if "Traceback (most recent call last)" in self.stderr or "Traceback" in self.stdout:
            return "traceback", last_line(self.stderr)
        if expect.startswith("rc:") and str(self.rc) in expect[3:].split(","):
            return "ok", ""  # a status the case asked for (a signal it sent)
        if self.rc < 0 and -self.rc in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
            return "killed", f"signal {-self.rc}"
        errors = [line for line in self.stderr.splitlines() if line.startswith("gannet: error:")]
        if self.rc == 2:
            if len(errors) != 1:
                return "wrong", f"exit 2 with {len(errors)} 'gannet: error:' lines: {last_line(self.stderr)}"
            if expect == "ok":
                return "wrong", f"refused a valid request: {errors[0]}"
            return "refused", errors[0]
        if self.rc == 0:
            if expect == "refused":
                return "wrong", "accepted (exit 0) what should be refused"
            return "ok", ""
        if expect.startswith("rc:") and str(self.rc) in expect[3:].split(","):
            return "ok", ""
        return "wrong", f"exit {self.rc}: {last_line(self.stderr)}"


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:240] if lines else ""


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    os.setpgrp()


class Ctx:
    """A case's temporary folder and the commands it ran."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.runs: list[tuple[Result, str]] = []
        self.mounts: list[Path] = []

    def env(self) -> dict[str, str]:
        # no $GANNET_DATA and an empty home (so no per-user cache): a case's --data-dir is the only data
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(self.tmp / "home")}
        env.pop("GANNET_DATA", None)
        env.pop("XDG_CACHE_HOME", None)
        return env

    def gannet(self, *args: str, expect: str = "any", timeout: float = 90, cwd: Path | None = None) -> Result:
        """One gannet command, run to its end (in a forked child: see fork)."""
        return self.fork(*args, expect=expect, timeout=timeout, cwd=cwd)

    def popen(self, *args: str, cwd: Path | None = None) -> subprocess.Popen:
        (self.tmp / "home").mkdir(exist_ok=True)
        proc = subprocess.Popen(
            [*GANNET, *args],
            cwd=cwd or self.tmp,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_limit_memory,
        )
        proc.argv, proc.started = list(args), time.time()  # type: ignore[attr-defined]
        return proc

    def finish(self, proc: subprocess.Popen, expect: str = "any", timeout: float = 90) -> Result:
        left = max(1.0, timeout - (time.time() - proc.started))  # type: ignore[attr-defined]
        try:
            out, err = proc.communicate(timeout=left)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            rc = None
        result = Result(proc.argv, rc, out, err, time.time() - proc.started)  # type: ignore[attr-defined]
        self.runs.append((result, expect))
        return result

    def fork(self, *args: str, expect: str = "any", timeout: float = 90, cwd: Path | None = None) -> Result:
        """gannet's main() in a forked child (torch already imported here)."""
        (self.tmp / "home").mkdir(exist_ok=True)
        out_path, err_path = self.tmp / ".stdout", self.tmp / ".stderr"
        sys.stdout.flush()
        sys.stderr.flush()
        started = time.time()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 1
            try:
                _limit_memory()
                os.chdir(cwd or self.tmp)
                env = self.env()
                os.environ.clear()
                os.environ.update(env)
                for fd, path in ((1, out_path), (2, err_path)):
                    os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
                sys.argv = ["gannet", *args]
                code = gannet_main(list(args))
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            except BaseException:  # noqa: BLE001 - what an uncaught exception would print
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        rc = None
        while time.time() - started < timeout:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                rc = os.waitstatus_to_exitcode(status)
                break
            time.sleep(0.02)
        else:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        result = Result(
            list(args),
            rc,
            out_path.read_text(errors="replace"),
            err_path.read_text(errors="replace"),
            time.time() - started,
        )
        self.runs.append((result, expect))
        return result

    def mount(self, folder: Path, options: str) -> bool:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
        if done.returncode == 0:
            self.mounts.append(folder)
        return done.returncode == 0

    def cleanup(self) -> None:
        for folder in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


Check = Callable[[Ctx], "tuple[str, str] | None"]


@dataclass
class Case:
    name: str
    category: str
    run: Callable[[Ctx], None]
    check: Check | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)


CASES: list[Case] = []


def case(name: str, category: str, check: Check | None = None) -> Callable:
    def register(run: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
        CASES.append(Case(name, category, run, check))
        return run

    return register


# ---------------------------------------------------------------- shared runs and checks

BASE: dict[str, Path] = {}


def build_bases(root: Path) -> None:
    """One small MNIST run (2 epochs of 1,000 images) and toy1d runs, trained once and copied."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    jobs = {
        "mnist": ["train", *MNIST_TINY, "--epochs", "2", "--run-dir", str(root / "mnist")],
        "toy": ["train", *TOY, "--epochs", "2", "--run-dir", str(root / "toy")],
        "toy3": ["train", *TOY, "--epochs", "3", "--run-dir", str(root / "toy3")],
        "cond": ["train", "ring8", "--conditional", "--epochs", "1", "--no-progress", "--run-dir", str(root / "cond")],
    }
    for name, argv in jobs.items():
        done = subprocess.run([*GANNET, *argv], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"building the shared run {name} failed:\n{done.stderr}")
        BASE[name] = root / name


def copy(ctx: Ctx, name: str, to: str = "run") -> Path:
    target = ctx.tmp / to
    shutil.copytree(BASE[name], target)
    (target / ".gannet.lock").unlink(missing_ok=True)
    return target


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def tmp_files(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*.tmp")] if folder.exists() else []


def loads(run: Path) -> str | None:
    """None if the newest checkpoint of `run` loads with its state, else why not."""
    try:
        path = checkpoints.resolve(run)
        checkpoints.load_state(path)
        return None
    except Exception as error:  # noqa: BLE001
        return f"newest checkpoint does not load: {error}"


def sound_run(folder: str = "run", min_epoch: int = 1) -> Check:
    """The run's newest checkpoint loads, is at least `min_epoch`, and no .tmp is left."""

    def check(ctx: Ctx) -> tuple[str, str] | None:
        run = ctx.tmp / folder
        found = checkpoints.checkpoint_paths(run)
        if not found:
            return "data-loss", f"{folder} has no checkpoint left"
        if (why := loads(run)) is not None:
            return "data-loss", why
        epoch = int(checkpoints._NAME.search(found[-1].name).group(1))
        if epoch < min_epoch:
            return "data-loss", f"newest checkpoint is epoch {epoch}, expected at least {min_epoch}"
        if tmp_files(run):
            return "wrong", f"temporary files left: {tmp_files(run)[:2]}"
        return None

    return check


def unchanged(folder: str = "run") -> Check:
    """Every file of `folder` that was there after setup is still there, byte for byte."""

    def check(ctx: Ctx) -> tuple[str, str] | None:
        before = ctx.extra_snapshot[folder]  # type: ignore[attr-defined]
        now = snapshot(ctx.tmp / folder) if (ctx.tmp / folder).exists() else {}
        lost = [name for name in before if name not in now]
        changed = [name for name in before if name in now and now[name] != before[name]]
        if lost or changed:
            return "data-loss", f"lost {lost[:3]} changed {changed[:3]}"
        return None

    return check


def remember(ctx: Ctx, folder: str = "run") -> None:
    if not hasattr(ctx, "extra_snapshot"):
        ctx.extra_snapshot = {}  # type: ignore[attr-defined]
    ctx.extra_snapshot[folder] = snapshot(ctx.tmp / folder)  # type: ignore[attr-defined]


def both(*checks: Check) -> Check:
    def check(ctx: Ctx) -> tuple[str, str] | None:
        for one in checks:
            if (found := one(ctx)) is not None:
                return found
        return None

    return check


def absent(path: str) -> Check:
    def check(ctx: Ctx) -> tuple[str, str] | None:
        target = ctx.tmp / path
        refused = ctx.runs and ctx.runs[-1][0].rc == 2
        if refused and target.exists() and not (target.is_dir() and not any(target.iterdir()) and False):
            return "wrong", f"refused but left {path} behind"
        return None

    return check


def finite_npy(path: str) -> Check:
    def check(ctx: Ctx) -> tuple[str, str] | None:
        target = ctx.tmp / path
        if ctx.runs[-1][0].rc == 0:
            if not target.exists():
                return "wrong", f"exit 0 but {path} not written"
            array = np.load(target)
            if not np.isfinite(array).all():
                return "wrong", f"{path} holds non-finite values"
        return None

    return check


# ---------------------------------------------------------------- crafting files


def rewrite_checkpoint(
    path: Path,
    tensors: Callable[[dict], dict] | None = None,
    metadata: Callable[[dict], dict] | None = None,
    state: Callable[[dict], object] | None = None,
    digest: bool = True,
) -> None:
    """Edit a checkpoint and recompute its digests (content and state), as a crafted file would."""
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
        weights = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    if state is not None:
        old = torch.load(checkpoints.state_path(path), weights_only=True)
        new = state(old)
        import io

        buffer = io.BytesIO()
        torch.save(new, buffer)
        checkpoints.state_path(path).write_bytes(buffer.getvalue())
        import hashlib

        meta["state_sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    if tensors is not None:
        weights = tensors(weights)
    if metadata is not None:
        meta = metadata(meta)
    meta.pop("sha256", None)
    if digest:
        meta["sha256"] = checkpoints.content_digest(weights, meta)
    path.write_bytes(safetensors_bytes(weights, metadata=meta))


def newest(run: Path) -> Path:
    return checkpoints.checkpoint_paths(run)[-1]


def edit_config(meta: dict, **changes: object) -> dict:
    values = json.loads(meta["config"])
    values.update(changes)
    return {**meta, "config": json.dumps(values)}


# ---------------------------------------------------------------- 1. train flags

INT_FLAGS = {  # flag: (0 allowed, also valid values to try)
    "--image-size": False,
    "--channels": False,
    "--train-limit": False,
    "--epochs": False,
    "--batch-size": False,
    "--k": False,
    "--latent-dim": False,
    "--generator-deconv-kernel": False,
    "--generator-deconv-stride": False,
    "--maxout-pieces": False,
    "--discriminator-conv-pieces": False,
    "--momentum-start-epoch": True,
    "--momentum-saturate-epoch": True,
    "--average-from": True,
    "--seed": True,
    "--log-every": False,
    "--checkpoint-every": False,
    "--keep-checkpoints": False,
    "--keep-every": True,
    "--grid-size": False,
    "--parzen-every": True,
    "--parzen-samples": False,
}
FLOAT_FLAGS = {  # flag: 0 allowed
    "--generator-init": True,
    "--generator-output-init": True,
    "--discriminator-init": True,
    "--input-keep": False,
    "--hidden-keep": False,
    "--lr": False,
    "--lr-decay": False,
    "--lr-min": True,
    "--lr-gamma": False,
    "--max-col-norm": False,
    "--momentum": True,
    "--momentum-final": True,
}
LIST_FLAGS = [
    "--generator-hidden",
    "--generator-activations",
    "--generator-deconv-shape",
    "--discriminator-hidden",
    "--discriminator-conv-channels",
    "--discriminator-conv-kernels",
    "--discriminator-conv-pads",
    "--discriminator-conv-pools",
    "--discriminator-conv-pool-strides",
    "--lr-milestones",
    "--adam-betas",
]
CHOICE_FLAGS = ["--dataset", "--update", "--generator-loss", "--noise", "--generator-output", "--optimizer", "--device"]
MNIST_ONLY = {"--image-size", "--channels", "--train-limit", "--generator-bias-from-data", "--parzen-samples"}


def flag_case(flag: str, value: str, expect: str, label: str) -> None:
    def run(ctx: Ctx) -> None:
        base = ["train", *MNIST_TINY] if flag in MNIST_ONLY else ["train", *TOY]
        epochs = [] if flag == "--epochs" else ["--epochs", "1"]
        ctx.fork(*base, *epochs, "--run-dir", "run", f"{flag}={value}", expect=expect, timeout=60)

    def check(ctx: Ctx) -> tuple[str, str] | None:
        result = ctx.runs[-1][0]
        if (
            result.rc == 2
            and (ctx.tmp / "run").exists()
            and "non-finite" not in result.stderr
            and "NaN" not in result.stderr
        ):
            return "wrong", "refused but left the run directory behind"
        if result.rc == 0:
            bad = [line for line in result.stdout.splitlines() if "nan" in line.lower()]
            if bad:
                return "wrong", f"trained to NaN and exited 0: {bad[0][:120]}"
            return sound_run()(ctx)
        return None

    CASES.append(Case(f"train {flag}={value!r} ({label})", "train-flags", run, check))


def register_flag_cases() -> None:
    for flag, zero_ok in INT_FLAGS.items():
        flag_case(flag, "0", "any" if zero_ok else "refused", "zero")
        flag_case(flag, "-1", "refused" if flag != "--seed" else "any", "negative")
        flag_case(flag, str(10**30), "refused", "huge")
        flag_case(flag, "nan", "refused", "nan")
        flag_case(flag, "inf", "refused", "inf")
        flag_case(flag, "", "refused", "empty")
        flag_case(flag, "1.5", "refused", "wrong type")
    for flag, zero_ok in FLOAT_FLAGS.items():
        flag_case(flag, "0", "any" if zero_ok else "refused", "zero")
        flag_case(flag, "-1", "refused", "negative")
        flag_case(flag, "1e300", "any" if flag in ("--lr-decay", "--lr-gamma") else "refused", "huge")
        flag_case(flag, "nan", "refused", "nan")
        flag_case(flag, "inf", "refused", "inf")
        flag_case(
            flag, "", "refused" if flag != "--generator-output-init" and flag != "--max-col-norm" else "any", "empty"
        )
        flag_case(flag, "abc", "refused", "wrong type")
    for flag in LIST_FLAGS:
        flag_case(flag, "0", "refused", "zero")
        flag_case(flag, "-1", "refused", "negative")
        flag_case(flag, "1,,2", "refused", "empty item")
        flag_case(flag, "a,b", "refused" if flag != "--generator-activations" else "refused", "wrong type")
        flag_case(flag, "nan,inf", "refused", "nan")
    flag_case("--discriminator-hidden", str(10**12), "refused", "huge width")
    flag_case("--generator-hidden", "100000,100000", "refused", "huge memory")
    for flag in CHOICE_FLAGS:
        flag_case(flag, "", "refused", "empty")
        flag_case(flag, "bogus", "refused", "unknown")
    flag_case("--device", "cuda", "refused", "no GPU here")
    flag_case("--device", "cuda:99", "refused", "no such GPU")
    flag_case("--dataset", "folder:", "refused", "folder of nothing")
    flag_case("--lr", "1e10", "refused", "diverges to NaN")
    flag_case("--generator-init", "1e30", "refused", "overflow init")
    flag_case("--adam-betas", "0.5", "refused", "one beta")
    flag_case("--adam-betas", "1,1", "refused", "beta 1")
    flag_case("--generator-activations", "relu,relu,relu", "refused", "more than layers")
    flag_case("--lr-milestones", "2,1", "refused", "descending")
    flag_case("--momentum", "1", "refused", "momentum 1")
    flag_case("--k", "3", "any", "k with simultaneous")


def unknown_flag_cases() -> None:
    for argv, name in [
        (["train", *TOY, "--epochs", "1", "--run-dir", "run", "--lr-decy", "2"], "misspelt flag"),
        (["train", *TOY, "--epochs", "1", "--run-dir", "run", "--epoch", "1"], "abbreviation"),
        (["train", "nosuchpreset", "--run-dir", "run"], "unknown preset"),
        (["train", *TOY, "extra", "--run-dir", "run"], "extra positional"),
        (["sample", "run", "--nmu", "3"], "unknown sample flag"),
        (["--allow-unverified"], "global flag, no command"),  # prints the help, exit 0 (argued in the doc)
        ([], "no command"),
        (["frobnicate"], "unknown command"),
    ]:

        def run(ctx: Ctx, argv: list[str] = argv) -> None:
            copy(ctx, "toy")
            remember(ctx)
            ctx.fork(*argv, expect="any" if argv in ([], ["--allow-unverified"]) else "refused", timeout=60)

        CASES.append(Case(f"cli {name}", "train-flags", run, unchanged()))


# ---------------------------------------------------------------- 2. config files


def config_case(name: str, content: bytes | None, expect: str = "refused", special: str | None = None) -> None:
    def run(ctx: Ctx) -> None:
        path = ctx.tmp / "c.json"
        if special == "dir":
            path.mkdir()
        elif special == "fifo":
            os.mkfifo(path)
        elif special == "missing":
            pass
        elif special:
            path = Path(special)
        else:
            path.write_bytes(content or b"")
        ctx.gannet(
            "train",
            "--config",
            str(path),
            "--no-progress",
            "--epochs",
            "1",
            "--run-dir",
            "run",
            expect=expect,
            timeout=60,
        )

    CASES.append(Case(f"config {name}", "config-files", run, absent("run")))


def register_config_cases() -> None:
    toy = json.loads((BASE["toy"] / "config.json").read_text())
    config_case("missing file", None, special="missing")
    config_case("a folder", None, special="dir")
    config_case("a FIFO (nobody writes)", None, special="fifo")
    config_case("/dev/zero", None, special="/dev/zero")
    config_case("/proc/self/mem", None, special="/proc/self/mem")
    config_case("empty", b"")
    config_case("not JSON", b"epochs = 3\n")
    config_case("binary", bytes(range(256)) * 4)
    config_case("JSON list", b"[1, 2]")
    config_case("JSON string", b'"toy1d"')
    config_case("unknown key", json.dumps({**toy, "epochz": 3}).encode())
    config_case("epochs a string", json.dumps({**toy, "epochs": "3"}).encode())
    config_case("epochs bool", json.dumps({**toy, "epochs": True}).encode())
    config_case("epochs float", json.dumps({**toy, "epochs": 2.5}).encode())
    config_case("epochs -1", json.dumps({**toy, "epochs": -1}).encode())
    config_case("lr NaN literal", json.dumps({**toy, "lr": float("nan")}).encode())
    config_case("lr Infinity", json.dumps({**toy, "lr": float("inf")}).encode())
    config_case("huge number", json.dumps(toy).replace('"epochs": 2', '"epochs": 1e400').encode())
    config_case("huge int", json.dumps({**toy, "batch_size": 10**40}).encode())
    config_case("nested object", json.dumps({**toy, "generator_hidden": {"a": 1}}).encode())
    config_case("list of strings", json.dumps({**toy, "generator_hidden": ["32", "32"]}).encode())
    config_case("null where int", json.dumps({**toy, "latent_dim": None}).encode())
    config_case("unknown dataset", json.dumps({**toy, "dataset": "imagenet"}).encode())
    config_case("deep nesting", b"[" * 100000 + b"]" * 100000)
    config_case("utf-16", json.dumps(toy).encode("utf-16"))
    config_case("valid toy config", json.dumps({**toy, "epochs": 1}).encode(), expect="ok")
    config_case("partial config (one key)", json.dumps({"epochs": 1, "dataset": "toy1d"}).encode(), expect="any")


# ------------------------------------------- 3. eval / sample / figures / average / infer / data flags


def command_case(
    name: str,
    category: str,
    argv: list[str],
    expect: str = "refused",
    base: str = "toy",
    check: Check | None = None,
    timeout: float = 90,
) -> None:
    def run(ctx: Ctx) -> None:
        if base:
            copy(ctx, base)
            remember(ctx)
        ctx.gannet(*argv, expect=expect, timeout=timeout)

    checks = [check] if check else []
    if base:
        checks.append(unchanged_or_added())
    CASES.append(Case(name, category, run, both(*checks)))


def unchanged_or_added(folder: str = "run") -> Check:
    def check(ctx: Ctx) -> tuple[str, str] | None:
        return unchanged(folder)(ctx)

    return check


def register_command_cases() -> None:
    c = "commands"
    sample = ["sample", "run"]
    for n in ["0", "-1", str(10**12), "abc", ""]:
        command_case(f"sample -n {n!r}", c, [*sample, "-n", n, "-o", "s.png"])
    for seed in ["-1", str(2**64), "abc"]:
        command_case(f"sample --seed {seed}", c, [*sample, "--seed", seed, "-o", "s.png"])
    command_case("sample --label on unconditional", c, [*sample, "--label", "3", "-o", "s.png"])
    command_case("sample --label 8 on ring8 (8 classes)", c, [*sample, "--label", "8", "-o", "s.png"], base="cond")
    command_case("sample --label -1 conditional", c, [*sample, "--label", "-1", "-o", "s.png"], base="cond")
    command_case(
        "sample --label 7 conditional",
        c,
        [*sample, "--label", "7", "--npy", "s.npy", "-o", "s.png"],
        expect="ok",
        base="cond",
        check=finite_npy("s.npy"),
    )
    command_case("sample --device bogus", c, [*sample, "--device", "bogus", "-o", "s.png"])
    command_case("sample --device cuda (none)", c, [*sample, "--device", "cuda", "-o", "s.png"])
    command_case("sample missing run", c, ["sample", "nothere", "-o", "s.png"], base="")
    command_case("sample ok npy", c, [*sample, "--npy", "s.npy"], expect="ok", check=finite_npy("s.npy"))
    command_case(
        "sample mnist ok",
        c,
        [*sample, "-n", "4", "-o", "s.png", "--npy", "s.npy"],
        expect="ok",
        base="mnist",
        check=finite_npy("s.npy"),
    )
    ep = [
        "eval",
        "parzen",
        "run",
        "--data-dir",
        str(DATA),
        "--num-samples",
        "200",
        "--num-valid",
        "50",
        "--num-test",
        "50",
    ]
    for flag, value in [
        ("--sigma", "0"),
        ("--sigma", "-1"),
        ("--sigma", "nan"),
        ("--sigma", "inf"),
        ("--sigmas", ""),
        ("--sigmas", "0.1,nan"),
        ("--sigmas", "0.1,,0.2"),
        ("--num-samples", "0"),
        ("--num-valid", "0"),
        ("--num-valid", "-5"),
        ("--num-test", "0"),
        ("--batch-size", "0"),
        ("--batch-size", "-1"),
        ("--seed", "-1"),
        ("--dataset", "cifar10"),
    ]:
        command_case(f"eval parzen {flag} {value!r}", c, [*ep, flag, value], base="mnist")
    command_case(
        "eval parzen --sigma 1e-300 (underflow)",
        c,
        [*ep, "--sigma", "1e-300", "-o", "p.json"],
        expect="any",
        base="mnist",
        check=json_finite("p.json"),
    )
    command_case(
        "eval parzen --sigma 1e300",
        c,
        [*ep, "--sigma", "1e300", "-o", "p.json"],
        expect="any",
        base="mnist",
        check=json_finite("p.json"),
    )
    command_case(
        "eval parzen ok",
        c,
        [*ep, "--sigma", "0.2", "-o", "p.json"],
        expect="ok",
        base="mnist",
        check=json_finite("p.json"),
    )
    command_case(
        "eval parzen --num-test beyond the test set (capped, said)",
        c,
        [*ep, "--num-test", str(10**9), "--sigma", "0.2", "-o", "p.json"],
        expect="any",
        base="mnist",
        check=json_finite("p.json"),
    )
    command_case("eval parzen on toy1d run", c, ["eval", "parzen", "run", "--num-samples", "100"], base="toy")
    command_case("eval quality -n 0", c, ["eval", "quality", "run", "--num-samples", "0"], base="mnist")
    command_case("eval quality -n -1", c, ["eval", "quality", "run", "--num-samples", "-1"], base="mnist")
    command_case(
        "eval quality on toy1d",
        c,
        ["eval", "quality", "run", "--num-samples", "100", "-o", "q.json"],
        expect="any",
        base="toy",
    )
    command_case(
        "eval features --num-train 0",
        c,
        ["eval", "features", "run", "--data-dir", str(DATA), "--num-train", "0"],
        base="mnist",
    )
    command_case(
        "eval features --num-train -1",
        c,
        ["eval", "features", "run", "--data-dir", str(DATA), "--num-train", "-1"],
        base="mnist",
    )
    command_case("eval features on toy1d", c, ["eval", "features", "run", "--num-train", "100"], base="toy")
    for spec in ["2-1", "a-b", "1-99", "0-1", "-1-2", "1", "", "1-2-3", "99999999999999999999-1"]:
        command_case(f"average --epochs {spec!r}", c, ["average", "run", "--epochs", spec])
    command_case("average --every 0", c, ["average", "run", "--epochs", "1-2", "--every", "0"])
    command_case("average --every -1", c, ["average", "run", "--epochs", "1-2", "--every", "-1"])
    command_case("average ok", c, ["average", "run", "--epochs", "1-2", "-o", "avg.safetensors"], expect="ok")
    for steps in ["0", "-1", str(10**12)]:
        command_case(
            f"infer --steps {steps}",
            c,
            ["infer", "run", "--data-dir", str(DATA), "--steps", steps, "-o", "inf"],
            base="mnist",
        )
    command_case("infer on toy1d", c, ["infer", "run", "--steps", "10", "-o", "inf"], base="toy")
    fig = ["figures"]
    for rows, cols in [("0", "6"), ("8", "1"), ("-1", "6"), ("8", "0"), (str(10**6), "6")]:
        command_case(
            f"fig2 --rows {rows} --columns {cols}",
            c,
            [*fig, "fig2", "run", "--data-dir", str(DATA), "--rows", rows, "--columns", cols, "-o", "f.png"],
            base="mnist",
        )
    for rows, steps in [("0", "10"), ("8", "1"), ("8", "0"), ("8", str(10**7))]:
        command_case(
            f"fig3 --rows {rows} --steps {steps}",
            c,
            [*fig, "fig3", "run", "--rows", rows, "--steps", steps, "-o", "f.png"],
            base="mnist",
        )
    command_case("figures classes unconditional", c, [*fig, "classes", "run", "-o", "f.png"], base="mnist")
    command_case(
        "figures classes --columns 0", c, [*fig, "classes", "run", "--columns", "0", "-o", "f.png"], base="cond"
    )
    command_case("figures fig1 on mnist run", c, [*fig, "fig1", "run", "-o", "f.png"], base="mnist")
    command_case(
        "figures fig1 --format pdf -o f.png",
        c,
        [*fig, "fig1", "run", "--format", "pdf", "-o", "f.png"],
        base="toy",
        expect="any",
        check=png_or_refused("f.png"),
    )
    command_case("figures costs -o f.bmp", c, [*fig, "costs", "-o", "f.bmp"], base="")
    command_case("figures curves on run", c, [*fig, "curves", "run", "-o", "f.png"], expect="ok")
    command_case(
        "figures curves on a checkpoint", c, [*fig, "curves", "run/checkpoints/epoch-0001.safetensors", "-o", "f.png"]
    )
    command_case("data check bogus", c, ["data", "check", "bogus"], base="")
    # `data check` is a report: exit 1 when a data set is missing, each one's state on stdout
    command_case(
        "data check --data-dir a file", c, ["data", "check", "--data-dir", "/etc/hostname"], base="", expect="rc:0,1"
    )
    command_case("data download bogus", c, ["data", "download", "bogus"], base="")
    command_case(
        "data download mnist into read-only /proc",
        c,
        ["data", "download", "mnist", "--data-dir", "/proc/gannet"],
        base="",
        timeout=60,
    )
    command_case("theory ok", c, ["theory"], expect="ok", base="")
    command_case("presets extra arg", c, ["presets", "mnist"], base="")


def json_finite(path: str) -> Check:
    def check(ctx: Ctx) -> tuple[str, str] | None:
        target = ctx.tmp / path
        if ctx.runs[-1][0].rc == 0:
            if not target.exists():
                return "wrong", f"exit 0 but {path} not written"
            text = target.read_text()
            if "NaN" in text or "Infinity" in text:
                return "wrong", f"{path} holds non-finite numbers: {text[:160]}"
        return None

    return check


def png_or_refused(path: str) -> Check:
    def check(ctx: Ctx) -> tuple[str, str] | None:
        target = ctx.tmp / path
        if ctx.runs[-1][0].rc == 0 and target.exists() and not target.read_bytes().startswith(b"\x89PNG"):
            return "wrong", f"{path} is not a PNG but named .png"
        return None

    return check


# ---------------------------------------------------------------- 4. output paths


def register_output_cases() -> None:
    c = "output-paths"
    targets = {
        "a folder": "outdir",
        "/proc/version": "/proc/version",
        "under /proc": "/proc/gannet/x.EXT",
        "parent is a file": "afile/x.EXT",
        "empty path": "",
        "unknown suffix": "x.xyz",
        "no suffix": "x",
        "read-only mount": "ro/x.EXT",
        "/dev/full": "/dev/full",
    }
    commands = {
        "sample -o": (["sample", "run", "-o"], "png", "toy"),
        "sample --npy": (["sample", "run", "-o", "s.png", "--npy"], "npy", "toy"),
        "average -o": (["average", "run", "--epochs", "1-2", "-o"], "safetensors", "toy"),
        "eval parzen -o": (
            [
                "eval",
                "parzen",
                "run",
                "--data-dir",
                str(DATA),
                "--num-samples",
                "100",
                "--num-valid",
                "20",
                "--num-test",
                "20",
                "--sigma",
                "0.2",
                "-o",
            ],
            "json",
            "mnist",
        ),
        "figures curves -o": (["figures", "curves", "run", "-o"], "png", "toy"),
        "infer -o": (["infer", "run", "--steps", "5", "-o"], "", "toy"),
    }
    for command, (argv, suffix, base) in commands.items():
        for what, target in targets.items():
            if command == "infer -o" and what in ("unknown suffix", "no suffix", "/dev/full"):
                continue
            path = target.replace(".EXT", f".{suffix}" if suffix else "")

            def run(ctx: Ctx, argv: list[str] = argv, path: str = path, base: str = base) -> None:
                copy(ctx, base)
                (ctx.tmp / "outdir").mkdir()
                (ctx.tmp / "afile").write_text("user data\n")
                if path.startswith("ro/") and not ctx.mount(ctx.tmp / "ro", "ro,size=1m"):
                    raise Skip("cannot mount a tmpfs")
                remember(ctx)
                ctx.gannet(*argv, path, expect="refused", timeout=90)

            def check(ctx: Ctx) -> tuple[str, str] | None:
                if (ctx.tmp / "afile").read_text() != "user data\n":
                    return "data-loss", "afile changed"
                return unchanged()(ctx)

            CASES.append(Case(f"{command} {what} ({path!r})", c, run, check))
    # a run's own files as outputs: must never replace them with something else
    own = [
        (
            "average -o onto the newest checkpoint",
            ["average", "run", "--epochs", "1-2", "-o", "run/checkpoints/epoch-0002.safetensors"],
        ),
        (
            "average -o onto an older checkpoint",
            ["average", "run", "--epochs", "1-2", "-o", "run/checkpoints/epoch-0001.safetensors"],
        ),
        (
            "eval quality -o onto config.json",
            ["eval", "quality", "run", "--num-samples", "100", "-o", "run/config.json"],
        ),
        ("sample --npy onto metrics.jsonl", ["sample", "run", "-o", "s.png", "--npy", "run/metrics.jsonl"]),
        ("infer -o the run directory", ["infer", "run", "--steps", "5", "-o", "run"]),
        # not here: sample -o onto a grid of run/samples/ replaces it, as -o is asked to (argued in the doc)
        ("infer -o the checkpoints folder", ["infer", "run", "--steps", "5", "-o", "run/checkpoints"]),
    ]
    for name, argv in own:

        def run(ctx: Ctx, argv: list[str] = argv) -> None:
            copy(ctx, "toy")
            remember(ctx)
            ctx.gannet(*argv, expect="any", timeout=90)

        CASES.append(Case(name, c, run, both(unchanged(), sound_run(min_epoch=2))))
    for what, target, setup in [
        ("--run-dir under /proc", "/proc/gannet-run", None),
        ("--run-dir parent a file", "afile/run", None),
        ("--run-dir a file", "afile", None),
        ("--run-dir on a read-only mount", "ro/run", "ro"),
        ("--run-dir /dev/null", "/dev/null", None),
        ("--run-dir a symlink to a file", "link", "link"),
        ("--run-dir a dangling symlink", "dangling", "dangling"),
    ]:

        def run(ctx: Ctx, target: str = target, setup: str | None = setup) -> None:
            (ctx.tmp / "afile").write_text("user data\n")
            if setup == "ro" and not ctx.mount(ctx.tmp / "ro", "ro,size=1m"):
                raise Skip("cannot mount a tmpfs")
            if setup == "link":
                (ctx.tmp / "link").symlink_to(ctx.tmp / "afile")
            if setup == "dangling":
                (ctx.tmp / "dangling").symlink_to(ctx.tmp / "nowhere" / "deeper")
            ctx.gannet("train", *TOY, "--epochs", "1", "--run-dir", target, expect="any", timeout=60)

        def check(ctx: Ctx) -> tuple[str, str] | None:
            if (ctx.tmp / "afile").read_text() != "user data\n":
                return "data-loss", "afile changed"
            return None

        CASES.append(Case(what, c, run, check))


class Skip(Exception):
    pass


# ---------------------------------------------------------------- 5. input files


def input_case(
    name: str,
    craft: Callable[[Ctx, Path], list[str]],
    expect: str = "refused",
    base: str = "toy",
    check: Check | None = None,
) -> None:
    """`craft(ctx, run)` damages the copied run and returns the command to run."""

    def run(ctx: Ctx) -> None:
        folder = copy(ctx, base) if base else ctx.tmp / "run"
        argv = craft(ctx, folder)
        ctx.gannet(*argv, expect=expect, timeout=90)

    CASES.append(Case(name, "input-files", run, check))


def register_input_cases() -> None:
    def truncated(n: int) -> Callable:
        def craft(ctx: Ctx, run: Path) -> list[str]:
            path = newest(run)
            path.write_bytes(path.read_bytes()[:n])
            return ["sample", str(path), "-o", "s.png"]

        return craft

    for n in [0, 7, 8, 100, 5000]:
        input_case(f"checkpoint truncated to {n} bytes", truncated(n))

    def replace_with(data: bytes) -> Callable:
        def craft(ctx: Ctx, run: Path) -> list[str]:
            newest(run).write_bytes(data)
            return ["sample", "run", "-o", "s.png"]

        return craft

    input_case("checkpoint random bytes", replace_with(os.urandom(4096)))
    input_case("checkpoint a PNG", replace_with(b"\x89PNG\r\n\x1a\n" + os.urandom(200)))
    input_case("checkpoint with huge header length", replace_with((2**62).to_bytes(8, "little") + b"{}"))
    input_case("checkpoint header not JSON", replace_with((10).to_bytes(8, "little") + b"not json!!"))
    input_case("safetensors of another tool (no metadata)", replace_with(safetensors_bytes({"w": torch.zeros(3)})))
    input_case(
        "safetensors of another tool (format mlx)",
        replace_with(safetensors_bytes({"w": torch.zeros(3)}, metadata={"format": "mlx"})),
    )

    def crafted(tensors=None, metadata=None, state=None, command="sample", digest=True) -> Callable:
        def craft(ctx: Ctx, run: Path) -> list[str]:
            rewrite_checkpoint(newest(run), tensors, metadata, state, digest)
            if command == "resume":
                return ["train", "--resume", "run", "--epochs", "3", "--no-progress"]
            if command == "average":
                return ["average", "run", "--epochs", "1-2", "-o", "a.safetensors"]
            return ["sample", "run", "-o", "s.png", "--npy", "s.npy"]

        return craft

    def first(fn: Callable) -> Callable:
        def edit(w: dict) -> dict:
            name = sorted(k for k in w if k.startswith("generator."))[-1]  # G's output layer: every sample
            return {**w, name: fn(w[name])}

        return edit

    for command in ["sample", "resume"]:  # resume takes its config from config.json, not the checkpoint's
        input_case(
            f"crafted: a tensor of the wrong shape ({command})",
            crafted(tensors=first(lambda t: torch.zeros(3, 3)), command=command),
        )
        input_case(
            f"crafted: a tensor missing ({command})",
            crafted(tensors=lambda w: {k: v for k, v in w.items() if k != sorted(w)[-1]}, command=command),
        )
        input_case(
            f"crafted: an extra tensor ({command})",
            crafted(tensors=lambda w: {**w, "generator.extra": torch.zeros(2)}, command=command),
            expect="any",
        )
        input_case(
            f"crafted: NaN weights ({command})",
            crafted(tensors=first(lambda t: torch.full_like(t, float("nan"))), command=command),
            check=finite_npy("s.npy") if command == "sample" else None,
        )
        input_case(
            f"crafted: float16 weights ({command})",
            crafted(tensors=first(lambda t: t.half()), command=command),
            expect="any",
            check=finite_npy("s.npy") if command == "sample" else None,
        )
        input_case(
            f"crafted: int weights ({command})",
            crafted(tensors=first(lambda t: t.to(torch.int32)), command=command),
            expect="any",
            check=finite_npy("s.npy") if command == "sample" else None,
        )
        input_case(f"crafted: epoch '²' ({command})", crafted(metadata=lambda m: {**m, "epoch": "²"}, command=command))
        input_case(f"crafted: epoch '٣' ({command})", crafted(metadata=lambda m: {**m, "epoch": "٣"}, command=command))
        input_case(
            f"crafted: epoch huge ({command})",
            crafted(metadata=lambda m: {**m, "epoch": "9" * 40}, command=command),
            expect="any",
        )
        input_case(
            f"crafted: config not JSON ({command})",
            crafted(metadata=lambda m: {**m, "config": "{oops"}, command=command),
            expect="refused" if command == "sample" else "any",
        )
        input_case(
            f"crafted: config a list ({command})",
            crafted(metadata=lambda m: {**m, "config": "[1]"}, command=command),
            expect="refused" if command == "sample" else "any",
        )
        input_case(
            f"crafted: config latent_dim 0 ({command})",
            crafted(metadata=lambda m: edit_config(m, latent_dim=0), command=command),
            expect="refused" if command == "sample" else "any",
        )
        input_case(
            f"crafted: config latent_dim 7 ({command})",
            crafted(metadata=lambda m: edit_config(m, latent_dim=7), command=command),
            expect="refused" if command == "sample" else "any",
        )
        input_case(
            f"crafted: config unknown key ({command})",
            crafted(metadata=lambda m: edit_config(m, bogus=1), command=command),
            expect="refused" if command == "sample" else "any",
        )
        input_case(
            f"crafted: config dataset folder:/nope ({command})",
            crafted(metadata=lambda m: edit_config(m, dataset="folder:/nope"), command=command),
            expect="any",
        )
        input_case(
            f"crafted: format_version 99 ({command})",
            crafted(metadata=lambda m: {**m, "format_version": "99"}, command=command),
            expect="any",
        )
        input_case(
            f"edited metadata, digest kept ({command})",
            crafted(metadata=lambda m: {**m, "epoch": "1"}, command=command, digest=False),
        )
    input_case(
        "crafted: no digest, --allow-unverified sample",
        lambda ctx, run: (
            rewrite_checkpoint(newest(run), digest=False),
            ["--allow-unverified", "sample", "run", "-o", "s.png"],
        )[1],
        expect="ok",
    )
    input_case(
        "crafted: NaN weights, average",
        crafted(tensors=first(lambda t: torch.full_like(t, float("nan"))), command="average"),
        check=no_file("a.safetensors"),
    )
    input_case(
        "crafted: NaN weights, figures fig1",
        lambda ctx, run: (
            rewrite_checkpoint(newest(run), first(lambda t: torch.full_like(t, float("nan")))),
            ["figures", "fig1", "run", "-o", "f.png"],
        )[1],
    )
    input_case(
        "crafted: NaN weights, eval parzen",
        lambda ctx, run: (
            rewrite_checkpoint(newest(run), first(lambda t: torch.full_like(t, float("nan")))),
            [
                "eval",
                "parzen",
                "run",
                "--data-dir",
                str(DATA),
                "--num-samples",
                "100",
                "--num-valid",
                "20",
                "--num-test",
                "20",
                "-o",
                "p.json",
            ],
        )[1],
        base="mnist",
        check=json_finite("p.json"),
    )

    def st(edit: Callable[[dict], object]) -> Callable:
        return crafted(state=edit, command="resume")

    input_case("state: a list", st(lambda s: [1, 2]))
    input_case("state: an int", st(lambda s: 7))
    input_case("state: optimizer missing", st(lambda s: {k: v for k, v in s.items() if k != "optimizer_g"}))
    input_case(
        "state: optimizer of wrong shape",
        st(
            lambda s: {
                **s,
                "optimizer_g": {
                    "state": {0: {"exp_avg": torch.zeros(1)}},
                    "param_groups": s["optimizer_g"]["param_groups"],
                },
            }
        ),
    )
    input_case("state: rng_numpy garbage", st(lambda s: {**s, "rng_numpy": ["MT19937", [1, 2], 0, 0, 0.0]}))
    input_case("state: rng_numpy short", st(lambda s: {**s, "rng_numpy": ["MT19937"]}))
    input_case("state: rng_python garbage", st(lambda s: {**s, "rng_python": (3, (1, 2), None)}))
    input_case("state: rng_torch wrong size", st(lambda s: {**s, "rng_torch": torch.zeros(5, dtype=torch.uint8)}))
    input_case("state: rng_data a string", st(lambda s: {**s, "rng_data": "x"}))
    input_case("state: fixed_noise wrong shape", st(lambda s: {**s, "fixed_noise": torch.zeros(3, 5)}))
    input_case(
        "state: fixed_noise NaN", st(lambda s: {**s, "fixed_noise": torch.full_like(s["fixed_noise"], float("nan"))})
    )
    input_case("state: progress epoch -1", st(lambda s: {**s, "progress": {**s["progress"], "epoch": -1}}))
    input_case("state: progress epoch a string", st(lambda s: {**s, "progress": {**s["progress"], "epoch": "2"}}))
    input_case("state: progress unknown key", st(lambda s: {**s, "progress": {**s["progress"], "bogus": 1}}))
    input_case(
        "state: progress position beyond the epoch",
        st(lambda s: {**s, "progress": {**s["progress"], "position": 10**6, "order": torch.arange(100000)}}),
    )
    input_case(
        "state: progress order out of range",
        st(lambda s: {**s, "progress": {**s["progress"], "position": 5, "order": torch.full((10000,), 10**9)}}),
    )
    input_case(
        "state: progress order a string",
        st(lambda s: {**s, "progress": {**s["progress"], "position": 5, "order": "abc"}}),
    )
    input_case(
        "state: progress total wrong shape",
        st(
            lambda s: {
                **s,
                "progress": {
                    **s["progress"],
                    "position": 5,
                    "order": torch.randperm(10000),
                    "total": torch.zeros(2),
                    "interval": torch.zeros(4),
                    "first_bad": torch.full((2,), -1),
                },
            }
        ),
    )
    input_case("state: best_parzen a string", st(lambda s: {**s, "progress": {**s["progress"], "best_parzen": "high"}}))
    input_case(
        "state: averaged 3 without sums",
        st(lambda s: {**s, "progress": {**s["progress"], "averaged": 3, "average": None}}),
    )
    input_case("state: scheduler garbage", st(lambda s: {**s, "scheduler_g": {"last_epoch": "x"}}))
    input_case(
        "state: epoch disagrees with weights file",
        st(lambda s: {**s, "progress": {**s["progress"], "epoch": 7}, "epoch": 7}),
        expect="any",
    )
    input_case(
        "state file missing",
        lambda ctx, run: (
            checkpoints.state_path(newest(run)).unlink(),
            ["train", "--resume", "run", "--epochs", "3", "--no-progress"],
        )[1],
    )
    input_case(
        "state file truncated",
        lambda ctx, run: (
            checkpoints.state_path(newest(run)).write_bytes(checkpoints.state_path(newest(run)).read_bytes()[:100]),
            ["train", "--resume", "run", "--epochs", "3", "--no-progress"],
        )[1],
    )
    input_case(
        "state file a folder",
        lambda ctx, run: (
            checkpoints.state_path(newest(run)).unlink(),
            checkpoints.state_path(newest(run)).mkdir(),
            ["train", "--resume", "run", "--epochs", "3", "--no-progress"],
        )[2],
    )
    input_case(
        "checkpoint a folder named .safetensors",
        lambda ctx, run: ((run / "checkpoints" / "epoch-0009.safetensors").mkdir(), ["sample", "run", "-o", "s.png"])[
            1
        ],
        expect="any",
    )
    input_case(
        "checkpoint a dangling symlink",
        lambda ctx, run: (
            (run / "checkpoints" / "epoch-0009.safetensors").symlink_to("/nowhere"),
            ["sample", "run", "-o", "s.png"],
        )[1],
        expect="any",
    )
    input_case(
        "checkpoint unreadable (/proc/self/mem link)",
        lambda ctx, run: (
            (ctx.tmp / "x.safetensors").symlink_to("/proc/self/mem"),
            ["sample", "x.safetensors", "-o", "s.png"],
        )[1],
    )
    input_case("checkpoint /dev/zero", lambda ctx, run: ["sample", "/dev/zero", "-o", "s.png"])
    input_case(
        "checkpoint a FIFO",
        lambda ctx, run: (os.mkfifo(ctx.tmp / "f.safetensors"), ["sample", "f.safetensors", "-o", "s.png"])[1],
    )

    # samples for eval parzen --samples
    def samples(make: Callable[[Path], None], name: str = "s.npy") -> Callable:
        def craft(ctx: Ctx, run: Path) -> list[str]:
            make(ctx.tmp / name)
            return [
                "eval",
                "parzen",
                "--samples",
                name,
                "--data-dir",
                str(DATA),
                "--num-valid",
                "20",
                "--num-test",
                "20",
                "--sigma",
                "0.2",
                "-o",
                "p.json",
            ]

        return craft

    input_case(
        "npy: object array (pickle)",
        samples(lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)),
        base="",
        check=None,
    )
    input_case(
        "npy: 3-D",
        samples(lambda p: np.save(p, np.zeros((10, 28, 28), np.float32))),
        expect="any",
        base="",
        check=json_finite("p.json"),
    )
    input_case("npy: empty", samples(lambda p: np.save(p, np.zeros((0, 784), np.float32))), base="")
    input_case("npy: NaN", samples(lambda p: np.save(p, np.full((10, 784), np.nan, np.float32))), base="")
    input_case("npy: values above 1", samples(lambda p: np.save(p, np.full((10, 784), 255, np.float32))), base="")
    input_case("npy: wrong width", samples(lambda p: np.save(p, np.zeros((10, 100), np.float32))), base="")
    input_case("npy: strings", samples(lambda p: np.save(p, np.array(["a", "b"]))), base="")
    input_case("npy: complex", samples(lambda p: np.save(p, np.zeros((10, 784), np.complex64))), base="")
    input_case(
        "npy: truncated",
        samples(lambda p: (np.save(p, np.zeros((10, 784), np.float32)), p.write_bytes(p.read_bytes()[:300]))),
        base="",
    )
    input_case("npy: text file", samples(lambda p: p.write_text("0 1 2\n")), base="")
    input_case(
        "npz: two arrays",
        samples(lambda p: np.savez(p, a=np.zeros((10, 784)), b=np.zeros((10, 784))), "s.npz"),
        expect="any",
        base="",
        check=json_finite("p.json"),
    )
    input_case("npz: no arrays", samples(lambda p: np.savez(p), "s.npz"), base="")
    input_case(
        "npz: a zip of junk",
        samples(lambda p: __import__("zipfile").ZipFile(p, "w").writestr("x.txt", "hi"), "s.npz"),
        base="",
    )
    input_case(
        "npy: huge header shape",
        samples(
            lambda p: p.write_bytes(
                b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 784), }"
                + b" " * 40
                + b"\n"
            )
        ),
        base="",
    )
    input_case("samples: unknown suffix .csv", samples(lambda p: p.write_text("1,2\n"), "s.csv"), base="")

    # folder: data
    def folder(make: Callable[[Path], None]) -> Callable:
        def craft(ctx: Ctx, run: Path) -> list[str]:
            images = ctx.tmp / "imgs"
            images.mkdir()
            make(images)
            return [
                "train",
                f"--dataset=folder:{images}",
                "--image-size",
                "8",
                "--epochs",
                "1",
                "--batch-size",
                "2",
                "--generator-hidden",
                "16,16",
                "--discriminator-hidden",
                "16,16",
                "--parzen-every",
                "0",
                "--no-progress",
                "--run-dir",
                "out",
            ]

        return craft

    from PIL import Image

    def pngs(folder: Path, n: int = 4, mode: str = "RGB", size: tuple = (12, 12)) -> None:
        for i in range(n):
            Image.new(mode, size).save(folder / f"{i}.png")

    input_case("folder: empty", folder(lambda f: None), base="")
    input_case("folder: only text files", folder(lambda f: (f / "a.txt").write_text("x")), base="")
    input_case(
        "folder: a corrupt PNG",
        folder(lambda f: (pngs(f), (f / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nxxxx"))),
        base="",
    )
    input_case(
        "folder: a .png that is a folder", folder(lambda f: (pngs(f), (f / "dir.png").mkdir())), expect="any", base=""
    )
    input_case("folder: one image", folder(lambda f: pngs(f, 1)), expect="any", base="")
    input_case(
        "folder: mixed modes",
        folder(
            lambda f: (
                pngs(f, 2, "RGBA"),
                pngs(f / ".." / "imgs", 1, "P"),
                Image.new("I;16", (9, 9)).save(f / "x16.png"),
            )
        ),
        expect="any",
        base="",
    )
    input_case("folder: a 1x1 image", folder(lambda f: pngs(f, 3, "L", (1, 1))), expect="any", base="")
    input_case(
        "folder: decompression bomb",
        folder(lambda f: (pngs(f, 2), Image.new("1", (30000, 30000)).save(f / "bomb.png"))),
        base="",
    )
    input_case(
        "folder: a dangling symlink",
        folder(lambda f: (pngs(f), (f / "gone.png").symlink_to("/nowhere.png"))),
        expect="any",
        base="",
    )
    input_case(
        "folder: path is a file",
        lambda ctx, run: (
            (ctx.tmp / "f").write_text("x"),
            ["train", f"--dataset=folder:{ctx.tmp / 'f'}", "--epochs", "1", "--run-dir", "out", "--no-progress"],
        )[1],
        base="",
    )

    # metrics.jsonl and config.json in a run directory
    def damage(rel: str, content: bytes | None, command: str) -> Callable:
        def craft(ctx: Ctx, run: Path) -> list[str]:
            path = run / rel
            if content is None:
                path.unlink()
            elif content == b"<dir>":
                path.unlink()
                path.mkdir()
            else:
                path.write_bytes(content)
            remember(ctx)
            if command == "curves":
                return ["figures", "curves", "run", "-o", "c.png"]
            return ["train", "--resume", "run", "--epochs", "3", "--no-progress"]

        return craft

    good = (BASE["toy"] / "metrics.jsonl").read_bytes()
    lines = good.splitlines(keepends=True)
    for command in ["curves", "resume"]:
        expect_ok = "any"
        input_case(f"metrics.jsonl missing ({command})", damage("metrics.jsonl", None, command), expect=expect_ok)
        input_case(f"metrics.jsonl empty ({command})", damage("metrics.jsonl", b"", command), expect=expect_ok)
        input_case(f"metrics.jsonl binary ({command})", damage("metrics.jsonl", os.urandom(500), command))
        input_case(f"metrics.jsonl a folder ({command})", damage("metrics.jsonl", b"<dir>", command), expect="any")
        input_case(
            f"metrics.jsonl middle line cut ({command})",
            damage("metrics.jsonl", lines[0] + lines[1][:10] + b"\n" + b"".join(lines[2:]), command),
        )
        input_case(
            f"metrics.jsonl last line cut ({command})",
            damage("metrics.jsonl", b"".join(lines[:-1]) + lines[-1][:10], command),
            expect="ok",
            check=metrics_kept(len(lines) - 1, command),
        )
        input_case(
            f"metrics.jsonl a record without step ({command})",
            damage("metrics.jsonl", b'{"loss/d": 1}\n' + good, command),
        )
        input_case(
            f"metrics.jsonl NaN values ({command})",
            damage("metrics.jsonl", good.replace(b'"loss/d": ', b'"loss/d": NaN, "x": '), command),
            expect="any",
        )
        input_case(
            f"metrics.jsonl step a float ({command})", damage("metrics.jsonl", b'{"step": 1.5}\n' + good, command)
        )
        input_case(
            f"metrics.jsonl loss a string ({command})",
            damage("metrics.jsonl", good.replace(b'"loss/d": ', b'"loss/d": "x", "y": '), command),
            expect="any",
        )
    for content, name in [
        (None, "missing"),
        (b"", "empty"),
        (b"[1]", "a list"),
        (b"{oops", "not JSON"),
        (b"<dir>", "a folder"),
    ]:
        input_case(
            f"config.json {name} (resume)", damage("config.json", content, "resume"), check=unchanged_but("config.json")
        )
    input_case(
        "config.json edited latent_dim (resume)",
        lambda ctx, run: (
            (run / "config.json").write_text(
                json.dumps({**json.loads((run / "config.json").read_text()), "latent_dim": 9})
            ),
            remember(ctx),
            ["train", "--resume", "run", "--epochs", "3", "--no-progress"],
        )[2],
        expect="any",
        check=resumed_sound(3),
    )


def unchanged_but(name: str) -> Check:
    def check(ctx: Ctx) -> tuple[str, str] | None:
        before = {k: v for k, v in ctx.extra_snapshot["run"].items() if k != name}  # type: ignore[attr-defined]
        now = snapshot(ctx.tmp / "run")
        lost = [k for k in before if k not in now or now[k] != before[k]]
        return ("data-loss", f"changed or lost {lost[:3]}") if lost and ctx.runs[-1][0].rc != 0 else None

    return check


def metrics_kept(n: int, command: str) -> Check:
    def check(ctx: Ctx) -> tuple[str, str] | None:
        if command == "resume":
            records = [line for line in (ctx.tmp / "run" / "metrics.jsonl").read_text().splitlines() if line.strip()]
            if len(records) < n:
                return "data-loss", f"metrics.jsonl holds {len(records)} records, had {n} whole ones"
            return sound_run(min_epoch=3)(ctx)
        return None

    return check


def resumed_sound(epochs: int) -> Check:
    def check(ctx: Ctx) -> tuple[str, str] | None:
        if ctx.runs[-1][0].rc == 0:
            return sound_run(min_epoch=epochs)(ctx)
        return None

    return check


def no_file(path: str) -> Check:
    def check(ctx: Ctx) -> tuple[str, str] | None:
        if (ctx.tmp / path).exists() and ctx.runs[-1][0].rc != 0:
            return "wrong", f"{path} written though the command failed"
        if (ctx.tmp / path).exists():
            tensors = checkpoints.load_weights(ctx.tmp / path)[0]
            if not all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point()):
                return "wrong", f"{path} holds NaN weights"
        return None

    return check


# ---------------------------------------------------------------- 6. run-directory life


def life_case(name: str, run: Callable[[Ctx], None], check: Check | None = None) -> None:
    CASES.append(Case(name, "run-dirs", run, check))


def register_life_cases() -> None:
    for target in ["", ".", "..", "~", "/", "home", "userdir", "userdir/"]:

        def run(ctx: Ctx, target: str = target) -> None:
            (ctx.tmp / "userdir").mkdir()
            (ctx.tmp / "userdir" / "thesis.tex").write_text("precious\n")
            (ctx.tmp / "home").mkdir()
            (ctx.tmp / "home" / "notes.txt").write_text("precious\n")
            (ctx.tmp / "mine.txt").write_text("precious\n")
            expect = "any" if target == "~" else "refused"  # "~" unexpanded: a new folder named ~, not $HOME
            ctx.gannet(
                "train",
                *TOY,
                "--epochs",
                "1",
                "--force",
                "--run-dir",
                target,
                expect=expect,
                timeout=60,
                cwd=ctx.tmp / "userdir" if target == ".." else ctx.tmp,
            )

        def check(ctx: Ctx) -> tuple[str, str] | None:
            for p in ["userdir/thesis.tex", "home/notes.txt", "mine.txt"]:
                if not (ctx.tmp / p).exists():
                    return "data-loss", f"{p} deleted"
            return None

        life_case(f"--force --run-dir {target!r} (user files)", run, check)

    def force_on_run(ctx: Ctx) -> None:
        copy(ctx, "toy")
        (ctx.tmp / "run" / "my-notes.txt").write_text("precious\n")
        ctx.gannet("train", *TOY, "--epochs", "1", "--force", "--run-dir", "run", expect="any", timeout=60)

    life_case(
        "--force on a run holding a user's file",
        force_on_run,
        lambda ctx: None if (ctx.tmp / "run" / "my-notes.txt").exists() else ("data-loss", "my-notes.txt deleted"),
    )

    def force_busy(ctx: Ctx) -> None:
        copy(ctx, "toy")
        proc = ctx.popen("train", "--resume", "run", "--epochs", "40", "--no-progress")
        time.sleep(4)
        ctx.gannet("train", *TOY, "--epochs", "1", "--force", "--run-dir", "run", expect="refused", timeout=60)
        proc.send_signal(signal.SIGINT)
        ctx.finish(proc, "rc:130,0", 60)

    life_case("--force on a run being trained", force_busy, sound_run(min_epoch=2))

    def run_twice(flags: list[str], expect: str, epochs: str = "3", check_epoch: int = 2) -> Callable:
        def run(ctx: Ctx) -> None:
            copy(ctx, "toy")
            remember(ctx)
            ctx.gannet(
                "train", "--resume", "run", "--epochs", epochs, "--no-progress", *flags, expect=expect, timeout=60
            )

        return run

    for flags, expect in [
        (["--lr", "0.5"], "any"),
        (["--batch-size", "50"], "any"),
        (["--latent-dim", "5"], "refused"),
        (["--generator-hidden", "8,8"], "refused"),
        (["--dataset", "ring8"], "refused"),
        (["--seed", "5"], "any"),
        (["--noise", "gaussian"], "any"),
        (["--optimizer", "sgd"], "any"),
        (["--lr-milestones", "1"], "any"),
        (["--average-from", "1"], "any"),
        (["--force"], "any"),
        (["--checkpoint-every", "5"], "any"),
        (["--keep-checkpoints", "1"], "any"),
    ]:
        life_case(
            f"resume with {' '.join(flags)}",
            run_twice(flags, expect),
            both(sound_run(min_epoch=2), lambda ctx: no_silent_ignore(ctx)),
        )
    life_case("resume --epochs below", run_twice([], "refused", epochs="1"), unchanged())
    life_case("resume --epochs equal (done)", run_twice([], "any", epochs="2"), unchanged())
    life_case("resume --epochs 0", run_twice([], "refused", epochs="0"), unchanged())

    def resume_what(what: str, expect: str = "refused") -> Callable:
        def run(ctx: Ctx) -> None:
            copy(ctx, "toy")
            (ctx.tmp / "plain").mkdir()
            (ctx.tmp / "plain" / "x.txt").write_text("x")
            if what == "no-checkpoints":
                shutil.rmtree(ctx.tmp / "run" / "checkpoints")
            remember(ctx)
            target = {"plain": "plain", "missing": "nothere", "no-checkpoints": "run", "": ""}.get(what, what)
            ctx.gannet("train", "--resume", target, "--epochs", "3", "--no-progress", expect=expect, timeout=60)

        return run

    for what in ["plain", "missing", "no-checkpoints", "", "/proc", "/etc/hostname"]:
        life_case(f"resume {what!r}", resume_what(what), None)

    def branch(ctx: Ctx) -> None:
        copy(ctx, "toy")
        remember(ctx)
        ctx.gannet(
            "train",
            "--resume",
            "run/checkpoints/epoch-0001.safetensors",
            "--run-dir",
            "b",
            "--epochs",
            "3",
            "--no-progress",
            expect="ok",
            timeout=60,
        )

    life_case("branch from epoch 1 into a new folder", branch, both(unchanged(), sound_run("b", 3)))

    def branch_into(target: str, expect: str = "refused") -> Callable:
        def run(ctx: Ctx) -> None:
            copy(ctx, "toy")
            copy(ctx, "toy3", "other")
            remember(ctx)
            remember(ctx, "other")
            ctx.gannet(
                "train",
                "--resume",
                "run/checkpoints/epoch-0001.safetensors",
                "--run-dir",
                target,
                "--epochs",
                "3",
                "--no-progress",
                expect=expect,
                timeout=60,
            )

        return run

    life_case("branch into another run", branch_into("other"), both(unchanged(), unchanged("other")))
    life_case("branch into another run with --force", branch_into("other", "any"), unchanged())
    life_case("branch from an older checkpoint in place", branch_into("run"), unchanged())

    def two_at_once(ctx: Ctx) -> None:
        first = ctx.popen("train", *TOY, "--epochs", "3", "--run-dir", "run")
        second = ctx.popen("train", *TOY, "--epochs", "3", "--run-dir", "run")
        a, b = ctx.finish(first, "any", 90), ctx.finish(second, "any", 90)
        ctx.extra_pair = (a.rc, b.rc)  # type: ignore[attr-defined]

    def one_trained(ctx: Ctx) -> tuple[str, str] | None:
        codes = sorted(ctx.extra_pair)  # type: ignore[attr-defined]
        if codes != [0, 2]:
            return "wrong", f"two runs on one folder exited {codes}, expected one 0 and one 2"
        return sound_run(min_epoch=3)(ctx)

    life_case("two new runs on one folder at once", two_at_once, one_trained)

    def resume_while(ctx: Ctx) -> None:
        copy(ctx, "toy")
        proc = ctx.popen("train", "--resume", "run", "--epochs", "30", "--no-progress")
        time.sleep(4)
        ctx.gannet("train", "--resume", "run", "--epochs", "30", "--no-progress", expect="refused", timeout=60)
        ctx.gannet("sample", "run", "-o", "s.png", expect="ok", timeout=60)
        proc.send_signal(signal.SIGTERM)
        ctx.finish(proc, "rc:143,0", 60)

    life_case("resume while training (and sample meanwhile)", resume_while, sound_run(min_epoch=2))

    def stale_lock(content: str) -> Callable:
        def run(ctx: Ctx) -> None:
            copy(ctx, "toy")
            (ctx.tmp / "run" / ".gannet.lock").write_text(content)
            ctx.gannet("train", "--resume", "run", "--epochs", "3", "--no-progress", expect="ok", timeout=60)

        return run

    life_case(
        "stale lock naming a dead pid", stale_lock("gannet process 999999 on otherhost\n"), sound_run(min_epoch=3)
    )
    life_case("stale lock of garbage bytes", stale_lock("\x00\xff garbage"), sound_run(min_epoch=3))

    def lock_is_dir(ctx: Ctx) -> None:
        copy(ctx, "toy")
        (ctx.tmp / "run" / ".gannet.lock").mkdir()
        ctx.gannet("train", "--resume", "run", "--epochs", "3", "--no-progress", expect="any", timeout=60)

    life_case("lock file is a folder", lock_is_dir, sound_run(min_epoch=2))

    def resume_and_force(ctx: Ctx) -> None:
        copy(ctx, "toy")
        ctx.gannet("train", "--resume", "run", "--force", "--epochs", "3", "--no-progress", expect="any", timeout=60)

    life_case("--resume with --force", resume_and_force, sound_run(min_epoch=2))

    def new_on_existing(ctx: Ctx) -> None:
        copy(ctx, "toy")
        remember(ctx)
        ctx.gannet("train", *TOY, "--epochs", "1", "--run-dir", "run", expect="refused", timeout=60)

    life_case("new run on an existing run without --force", new_on_existing, unchanged())

    def config_and_preset(ctx: Ctx) -> None:
        ctx.gannet(
            "train",
            "toy1d",
            "--config",
            str(BASE["mnist"] / "config.json"),
            "--epochs",
            "1",
            "--run-dir",
            "run",
            "--no-progress",
            expect="any",
            timeout=90,
        )

    life_case("preset and --config both given", config_and_preset, None)


def no_silent_ignore(ctx: Ctx) -> tuple[str, str] | None:
    """A resume that accepted a changed flag must say so or use it (here: only that it ran)."""
    return None


# ---------------------------------------------------------------- 7. signals and kill -9


def register_signal_cases() -> None:
    rng = random.Random(2014)
    plans = [("SIGINT", [d]) for d in (0.3, 1.5, 3.0, 4.5, 6.0)]
    plans += [("SIGTERM", [d]) for d in (0.3, 2.0, 3.5, 5.0, 7.0)]
    plans += [("SIGINT", [3.0, 3.05]), ("SIGINT", [4.0, 4.3]), ("SIGTERM", [3.5, 3.6]), ("SIGINT+SIGTERM", [3.5, 3.52])]
    plans += [("SIGINT", [round(rng.uniform(2.5, 7), 2)]) for _ in range(4)]
    for kind, delays in plans:

        def run(ctx: Ctx, kind: str = kind, delays: list[float] = delays) -> None:
            proc = ctx.popen("train", *TOY, "--epochs", "8", "--log-every", "10", "--run-dir", "run")
            start = time.time()
            for i, delay in enumerate(delays):
                time.sleep(max(0, start + delay - time.time()))
                sig = signal.SIGTERM if kind == "SIGTERM" or (kind == "SIGINT+SIGTERM" and i == 1) else signal.SIGINT
                if proc.poll() is None:
                    proc.send_signal(sig)
            result = ctx.finish(proc, "rc:130,143,2,-15", 60)  # -15: SIGTERM before gannet's code runs
            if result.rc in (130, 143, 2) and checkpoints.checkpoint_paths(ctx.tmp / "run"):
                ctx.gannet("train", "--resume", "run", "--epochs", "8", "--no-progress", expect="ok", timeout=90)

        def check(ctx: Ctx) -> tuple[str, str] | None:
            first = ctx.runs[0][0]
            if first.rc == -signal.SIGTERM and (ctx.tmp / "run").exists():
                return "wrong", "killed by SIGTERM, unannounced, after making the run directory"
            said = first.stderr.lower()
            if first.rc in (130, 143) and not any(
                w in said for w in ("resume", "--force", "nothing was done", "run the same command again")
            ):
                return "wrong", f"stopped without saying how to continue: {last_line(first.stderr)}"
            if not checkpoints.checkpoint_paths(ctx.tmp / "run"):
                return None if first.rc != 0 else ("data-loss", "no checkpoint")
            if tmp_files(ctx.tmp / "run"):
                return "wrong", f"temporary files left: {tmp_files(ctx.tmp / 'run')[:2]}"
            return sound_run(min_epoch=8)(ctx) if len(ctx.runs) > 1 else sound_run()(ctx)

        CASES.append(Case(f"{kind} at {delays} s, then resume", "signals", run, check))

    # kill -9 at random moments, resume, compare with an uninterrupted 3-epoch run
    for delay in [
        0.5,
        2.2,
        2.8,
        3.3,
        3.8,
        4.4,
        5.0,
        round(rng.uniform(2, 6), 2),
        round(rng.uniform(2, 6), 2),
        round(rng.uniform(2, 6), 2),
    ]:

        def run(ctx: Ctx, delay: float = delay) -> None:
            proc = ctx.popen("train", *TOY, "--epochs", "3", "--run-dir", "run")
            time.sleep(delay)
            proc.kill()
            ctx.finish(proc, "rc:-9,0", 30)
            if checkpoints.checkpoint_paths(ctx.tmp / "run"):
                ctx.gannet("train", "--resume", "run", "--epochs", "3", "--no-progress", expect="ok", timeout=90)
            else:
                ctx.gannet("train", *TOY, "--epochs", "3", "--run-dir", "run", "--force", expect="ok", timeout=90)

        def check(ctx: Ctx) -> tuple[str, str] | None:
            if (found := sound_run(min_epoch=3)(ctx)) is not None:
                return found
            mine = checkpoints.load_weights(ctx.tmp / "run")[0]
            reference = checkpoints.load_weights(BASE["toy3"])[0]
            if any(not torch.equal(mine[k], reference[k]) for k in reference):
                return "wrong", "weights after kill -9 and resume differ from an uninterrupted run"
            records = [json.loads(x) for x in (ctx.tmp / "run" / "metrics.jsonl").read_text().splitlines() if x.strip()]
            reference_records = [
                json.loads(x) for x in (BASE["toy3"] / "metrics.jsonl").read_text().splitlines() if x.strip()
            ]
            steps = [r["step"] for r in records]
            if steps != [r["step"] for r in reference_records]:
                return "wrong", f"metrics steps {steps[:8]}... differ from an uninterrupted run's"
            return None

        CASES.append(Case(f"kill -9 at {delay} s, resume, compare", "kill-9", run, check))


# ---------------------------------------------------------------- 8. full disk


def register_disk_cases() -> None:
    for size in ["64k", "160k", "300k", "600k", "1m", "3m"]:

        def run(ctx: Ctx, size: str = size) -> None:
            if not ctx.mount(ctx.tmp / "disk", f"size={size}"):
                raise Skip("cannot mount a tmpfs")
            ctx.gannet(
                "train",
                *TOY,
                "--epochs",
                "30",
                "--keep-checkpoints",
                "100",
                "--run-dir",
                "disk/run",
                expect="any",
                timeout=120,
            )
            result = ctx.runs[-1][0]
            ctx.disk_rc = result.rc  # type: ignore[attr-defined]
            if checkpoints.checkpoint_paths(ctx.tmp / "disk" / "run"):
                # free space (drop the sample grids), then resume must work
                shutil.rmtree(ctx.tmp / "disk" / "run" / "samples", ignore_errors=True)
                for old in checkpoints.checkpoint_paths(ctx.tmp / "disk" / "run")[:-1]:
                    checkpoints.state_path(old).unlink()
                    old.unlink()
                for event in (ctx.tmp / "disk" / "run").glob("events.out*"):
                    event.unlink()
                ctx.gannet(
                    "train",
                    "--resume",
                    "disk/run",
                    "--epochs",
                    "30",
                    "--keep-checkpoints",
                    "1",
                    "--no-progress",
                    expect="any",
                    timeout=120,
                )

        def check(ctx: Ctx) -> tuple[str, str] | None:
            first = ctx.runs[0][0]
            run = ctx.tmp / "disk" / "run"
            if (
                first.rc == 2
                and "resume" not in first.stderr
                and "--force" not in first.stderr
                and "space" not in first.stderr.lower()
            ):
                return "wrong", f"stopped without naming what to do: {last_line(first.stderr)}"
            if tmp_files(run):
                return "wrong", f"temporary files left on the full disk: {tmp_files(run)[:2]}"
            if checkpoints.checkpoint_paths(run) and (why := loads(run)) is not None:
                return "data-loss", why
            if (run / "metrics.jsonl").exists():
                try:
                    from gannet.metrics import read_metrics

                    read_metrics(run)
                except Exception as error:  # noqa: BLE001
                    return "data-loss", f"metrics.jsonl unreadable: {error}"
            return None

        CASES.append(Case(f"toy1d on a {size} tmpfs, then resume", "full-disk", run, check))
    for size, command in [("16k", "sample"), ("4k", "eval"), ("40m", "mnist"), ("20k", "average")]:

        def run(ctx: Ctx, size: str = size, command: str = command) -> None:
            if not ctx.mount(ctx.tmp / "disk", f"size={size}"):
                raise Skip("cannot mount a tmpfs")
            base = copy(ctx, "mnist" if command in ("eval",) else "toy")
            if command == "sample":
                (ctx.tmp / "disk" / "filler").write_bytes(b"x" * 12000)
                ctx.gannet(
                    "sample", "run", "-n", "64", "-o", "disk/s.png", "--npy", "disk/s.npy", expect="any", timeout=60
                )
            elif command == "eval":
                (ctx.tmp / "disk" / "filler").write_bytes(b"x" * 4096)
                ctx.gannet(
                    "eval",
                    "parzen",
                    "run",
                    "--data-dir",
                    str(DATA),
                    "--num-samples",
                    "100",
                    "--num-valid",
                    "20",
                    "--num-test",
                    "20",
                    "--sigma",
                    "0.2",
                    "-o",
                    "disk/p.json",
                    expect="any",
                    timeout=60,
                )
            elif command == "average":
                ctx.gannet("average", "run", "--epochs", "1-2", "-o", "disk/a.safetensors", expect="any", timeout=60)
            else:
                ctx.gannet("train", *MNIST_TINY, "--epochs", "3", "--run-dir", "disk/run", expect="any", timeout=120)
            del base

        def check(ctx: Ctx) -> tuple[str, str] | None:
            disk = ctx.tmp / "disk"
            if tmp_files(disk):
                return "wrong", f"temporary files left: {tmp_files(disk)}"
            result = ctx.runs[-1][0]
            for p in disk.rglob("*"):
                if p.is_file() and p.stat().st_size == 0 and result.rc != 0:
                    return "wrong", f"an empty {p.name} left behind by a failed write"
            if (disk / "run").exists() and checkpoints.checkpoint_paths(disk / "run") and (why := loads(disk / "run")):
                return "data-loss", why
            return None

        CASES.append(Case(f"{command} on a full {size} tmpfs", "full-disk", run, check))


# ---------------------------------------------------------------- 9. NaN


def register_nan_cases() -> None:
    def nan_run(argv: list[str], resume: list[str] | None = None) -> Callable:
        def run(ctx: Ctx) -> None:
            if resume is not None:
                copy(ctx, "toy")
                remember(ctx)
                ctx.gannet("train", "--resume", "run", "--no-progress", *resume, expect="any", timeout=90)
            else:
                ctx.gannet("train", *TOY, "--run-dir", "run", *argv, expect="any", timeout=90)

        return run

    def no_bad_checkpoint(ctx: Ctx) -> tuple[str, str] | None:
        run = ctx.tmp / "run"
        result = ctx.runs[-1][0]
        for path in (
            checkpoints.checkpoint_paths(run)
            + list((run / "checkpoints").glob("best*"))
            + list((run / "checkpoints").glob("average*"))
        ):
            tensors = checkpoints.load_weights(path)[0]
            if not all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point()):
                return "data-loss", f"{path.name} holds non-finite weights"
        if result.rc == 0 and "nan" in result.stdout.lower():
            return "wrong", "NaN losses, exit 0"
        return None

    for argv, name in [
        (["--epochs", "3", "--lr", "1e6", "--optimizer", "sgd"], "huge --lr sgd"),
        (["--epochs", "3", "--lr", "1e8"], "huge --lr adam"),
        (["--epochs", "3", "--lr", "1e6", "--average-from", "1"], "huge --lr with --average-from"),
        (["--epochs", "3", "--generator-init", "1e15", "--discriminator-init", "1e15"], "huge inits"),
        (["--epochs", "3", "--lr", "1e6", "--log-every", "1000"], "huge --lr, logging rarer than an epoch"),
        (["--epochs", "3", "--lr-decay", "1e-30"], "--lr-decay tiny (rate grows)"),
    ]:
        CASES.append(Case(f"NaN: {name}", "nan", nan_run(argv), no_bad_checkpoint))
    for resume, name in [
        (
            ["--epochs", "4", "--lr-milestones", "2", "--lr-gamma", "1e30"],
            "resume --lr-milestones with huge --lr-gamma",
        ),
        (["--epochs", "4", "--lr", "1e9"], "resume with huge --lr"),
        (["--epochs", "4", "--lr-milestones", "3", "--lr-gamma", "1e300"], "resume gamma 1e300"),
    ]:
        CASES.append(Case(f"NaN: {name}", "nan", nan_run([], resume), both(no_bad_checkpoint, sound_run(min_epoch=2))))


# ---------------------------------------------------------------- 10. data sets


def register_data_cases() -> None:
    def mnist_with(edit: Callable[[Path], None], expect: str = "refused") -> Callable:
        def run(ctx: Ctx) -> None:
            data = ctx.tmp / "data"
            shutil.copytree(DATA, data)
            edit(data / "mnist")
            remember(ctx, "data")
            ctx.gannet(
                "train",
                "--data-dir",
                str(data),
                "--no-download",
                "--train-limit",
                "1000",
                "--parzen-every",
                "0",
                "--no-progress",
                "--epochs",
                "1",
                "--run-dir",
                "run",
                expect=expect,
                timeout=120,
            )

        return run

    train_images = "train-images-idx3-ubyte.gz"

    def cut(name: str, n: int) -> Callable:
        return lambda d: (d / name).write_bytes((d / name).read_bytes()[:n])

    cases = [
        ("mnist folder missing", lambda d: shutil.rmtree(d)),
        ("mnist folder a file", lambda d: (shutil.rmtree(d), d.write_text("x"))),
        ("images missing", lambda d: (d / train_images).unlink()),
        ("images truncated gz", cut(train_images, 100000)),
        ("images empty", cut(train_images, 0)),
        ("labels truncated gz", cut("train-labels-idx1-ubyte.gz", 1000)),
        ("images garbage gz", lambda d: (d / train_images).write_bytes(os.urandom(5000))),
        (
            "images wrong magic",
            lambda d: (d / train_images).write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 100)),
        ),
        (
            "images header lies (huge count)",
            lambda d: (d / train_images).write_bytes(
                gzip.compress(
                    b"\x00\x00\x08\x03" + (2**31 - 1).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\x00" * 784
                )
            ),
        ),
        (
            "labels fewer than images",
            lambda d: (d / "train-labels-idx1-ubyte.gz").write_bytes(
                gzip.compress(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + b"\x01" * 10)
            ),
        ),
        (
            "labels out of range",
            lambda d: (d / "train-labels-idx1-ubyte.gz").write_bytes(
                gzip.compress(b"\x00\x00\x08\x01" + (60000).to_bytes(4, "big") + b"\xff" * 60000)
            ),
        ),
        ("images a folder", lambda d: ((d / train_images).unlink(), (d / train_images).mkdir())),
        (
            "images a gz bomb-ish (zeros, right header, 10x size)",
            lambda d: (d / train_images).write_bytes(
                gzip.compress(
                    b"\x00\x00\x08\x03"
                    + (600000).to_bytes(4, "big")
                    + (28).to_bytes(4, "big") * 2
                    + b"\x00" * (600000 * 784)
                )
            ),
        ),
        ("test images missing (training needs only train?)", lambda d: (d / "t10k-images-idx3-ubyte.gz").unlink()),
    ]
    for name, edit in cases:
        expect = "any" if "test images" in name else "refused"
        CASES.append(
            Case(f"data: {name}", "data-sets", mnist_with(edit, expect), both(unchanged("data"), absent("run")))
        )

    def data_dir(target: str, download: str = "--no-download") -> Callable:
        def run(ctx: Ctx) -> None:
            (ctx.tmp / "afile").write_text("x")
            ctx.gannet(
                "train",
                "--data-dir",
                target,
                download,
                "--train-limit",
                "1000",
                "--no-progress",
                "--epochs",
                "1",
                "--run-dir",
                "run",
                expect="refused",
                timeout=90,
            )

        return run

    for target, name in [("nothere", "missing"), ("afile", "a file"), ("", "empty"), ("/proc", "/proc")]:
        CASES.append(Case(f"data: --data-dir {name}", "data-sets", data_dir(target), absent("run")))
    CASES.append(Case("data: download with no network", "data-sets", data_dir("fresh", "--download"), absent("run")))
    CASES.append(
        Case(
            "data: cifar10 missing, no download",
            "data-sets",
            lambda ctx: ctx.gannet(
                "train",
                "cifar10-fc",
                "--data-dir",
                str(ctx.tmp),
                "--no-download",
                "--run-dir",
                "run",
                expect="refused",
                timeout=60,
            ),
            absent("run"),
        )
    )
    CASES.append(
        Case(
            "data: tfd missing",
            "data-sets",
            lambda ctx: ctx.gannet(
                "train", "tfd", "--data-dir", str(ctx.tmp), "--run-dir", "run", expect="refused", timeout=60
            ),
            absent("run"),
        )
    )
    CASES.append(
        Case(
            "data: check on a damaged mnist",
            "data-sets",
            lambda ctx: (
                shutil.copytree(DATA, ctx.tmp / "d"),
                (ctx.tmp / "d" / "mnist" / train_images).write_bytes(b"x"),
                ctx.gannet("data", "check", "mnist", "--data-dir", str(ctx.tmp / "d"), expect="any", timeout=60),
            ),
            None,
        )
    )


# ---------------------------------------------------------------- the campaign


def register_all() -> None:
    register_flag_cases()
    unknown_flag_cases()
    register_config_cases()
    register_command_cases()
    register_output_cases()
    register_input_cases()
    register_life_cases()
    register_signal_cases()
    register_disk_cases()
    register_nan_cases()
    register_data_cases()


def run_case(one: Case, root: Path) -> dict:
    tmp = Path(tempfile.mkdtemp(dir=root, prefix="case-"))
    ctx = Ctx(tmp)
    outcome, note = "ok", ""
    started = time.time()
    try:
        one.run(ctx)
        worst = ("ok", "")
        for result, expect in ctx.runs:
            found = result.outcome(expect)
            if ORDER.index(found[0]) > ORDER.index(worst[0]) or (worst[0] == "ok" and found[0] == "refused"):
                worst = found
        outcome, note = worst
        if outcome in ("ok", "refused", "wrong") and one.check is not None:
            found = one.check(ctx)
            if found is not None and ORDER.index(found[0]) > ORDER.index(outcome):
                outcome, note = found
    except Skip as skip:
        outcome, note = "ok", f"skipped: {skip}"
    except Exception as error:  # noqa: BLE001 - a bug of the campaign itself, reported as such
        outcome, note = "wrong", f"CAMPAIGN ERROR {type(error).__name__}: {error}"
    finally:
        ctx.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    commands = [
        {"argv": r.argv, "rc": r.rc, "stderr": last_line(r.stderr), "seconds": round(r.seconds, 1)} for r, _ in ctx.runs
    ]
    return {
        "name": one.name,
        "category": one.category,
        "outcome": outcome,
        "note": note,
        "seconds": round(time.time() - started, 1),
        "commands": commands,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only this category (or a comma-separated list)")
    parser.add_argument("--match", help="run only cases whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--json", help="write every outcome here")
    args = parser.parse_args()
    started = time.time()
    root = Path(tempfile.mkdtemp(prefix="gannet-campaign-"))
    try:
        if not args.list:
            print("building the shared runs ...", flush=True)
        build_bases(root / "bases") if not args.list else BASE.update(
            {k: Path("/nonexistent") for k in ("mnist", "toy", "toy3", "cond")}
        )
        if args.list:
            _fake_bases_for_listing(root)
        register_all()
        chosen = [
            c
            for c in CASES
            if (not args.only or c.category in args.only.split(",")) and (not args.match or args.match in c.name)
        ]
        if args.list:
            for one in chosen:
                print(f"{one.category:14} {one.name}")
            print(f"{len(chosen)} cases")
            return 0
        results = []
        for i, one in enumerate(chosen, 1):
            result = run_case(one, root)
            results.append(result)
            mark = "" if result["outcome"] in ("ok", "refused") else f"   <-- {result['note']}"
            print(f"[{i:3}/{len(chosen)}] {result['outcome']:9} {one.category:13} {one.name}{mark}", flush=True)
        report(results, time.time() - started)
        if args.json:
            Path(args.json).write_text(
                json.dumps({"seconds": round(time.time() - started), "cases": results}, indent=1)
            )
        return 0 if all(r["outcome"] in ("ok", "refused") for r in results) else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _fake_bases_for_listing(root: Path) -> None:
    """--list registers the cases without training: give the registrations files to read."""
    for name in ("mnist", "toy", "toy3", "cond"):
        folder = root / "fake" / name
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"epochs": 2}))
        (folder / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
        BASE[name] = folder


def report(results: list[dict], seconds: float) -> None:
    counts: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        counts[r["category"]][r["outcome"]] += 1
    width = max(len(c) for c in counts) + 2
    print("\n" + "category".ljust(width) + "".join(f"{o:>10}" for o in ORDER) + f"{'total':>8}")
    for category, row in counts.items():
        print(category.ljust(width) + "".join(f"{row[o]:>10}" for o in ORDER) + f"{sum(row.values()):>8}")
    total = Counter(r["outcome"] for r in results)
    print("all".ljust(width) + "".join(f"{total[o]:>10}" for o in ORDER) + f"{len(results):>8}")
    bad = [r for r in results if r["outcome"] not in ("ok", "refused")]
    if bad:
        print("\nnot ok or refused:")
        for r in bad:
            print(f"  {r['outcome']:9} [{r['category']}] {r['name']}: {r['note']}")
    print(f"\n{len(results)} cases in {seconds / 60:.1f} min")


if __name__ == "__main__":
    sys.exit(main())
