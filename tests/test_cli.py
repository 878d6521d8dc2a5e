"""The `gannet` command as a user runs it, on small MNIST-format data (tests/tiny_mnist.py) and the 1-D toy."""

import dataclasses
import json
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from gannet import checkpoints, presets
from gannet import config as config_module
from gannet.checkpoints import load_weights
from gannet.cli import main
from gannet.config import TrainConfig
from gannet.metrics import read_metrics
from gannet.train import clock

from .conftest import SMALL_MNIST, gannet, timeless


def test_train_writes_a_complete_run_directory(mnist_run):
    config = config_module.load(mnist_run / "config.json")
    assert config.preset == "mnist" and config.epochs == 2 and config.train_limit == 1000
    assert config.lr == 0.1 and config.update == "simultaneous"  # the preset, resolved
    metrics = [m for m in read_metrics(mnist_run) if "loss/d" in m]
    assert [m["step"] for m in metrics] == [5, 10, 15, 20]
    assert {"loss/d", "loss/g", "d/real", "d/fake", "lr/g", "lr/d", "momentum"} <= set(metrics[0])
    assert 0 < metrics[-1]["d/real"] < 1 and metrics[-1]["momentum"] == pytest.approx(0.5 + 0.2 / 249)
    assert list(mnist_run.glob("events.out.tfevents.*"))
    grid = Image.open(mnist_run / "samples" / "epoch-0002.png")
    assert grid.size == (2 * (10 * 30 + 2), 2 * (10 * 30 + 2))  # 10×10 cells of 28 px + 2 px borders, ×2
    assert (mnist_run / "samples" / "epoch-0001.png").is_file()
    tensors, metadata, path = load_weights(mnist_run)
    assert path.name == "epoch-0002.safetensors" and metadata["step"] == "20"
    assert tensors["generator.output.weight"].shape == (784, 1200)


def test_a_config_json_repeats_the_run_exactly(mnist_run, tmp_path):
    again = tmp_path / "again"
    assert main(["train", "--config", str(mnist_run / "config.json"), "--run-dir", str(again), "--no-progress"]) == 0
    first, second = load_weights(mnist_run)[0], load_weights(again)[0]
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert timeless(read_metrics(mnist_run)) == timeless(read_metrics(again))


def test_resume_continues_to_the_same_weights(mnist_run, tmp_path, tiny_dir):
    half = tmp_path / "half"
    assert (
        main(["train", "mnist", "--epochs", "1", "--data-dir", str(tiny_dir), "--run-dir", str(half), *SMALL_MNIST])
        == 0
    )
    assert main(["train", "--resume", str(half), "--epochs", "2", "--no-progress"]) == 0
    straight, resumed = load_weights(mnist_run)[0], load_weights(half)[0]
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert [m["step"] for m in read_metrics(half) if "loss/d" in m] == [5, 10, 15, 20]
    assert timeless(read_metrics(half)) == timeless(
        read_metrics(mnist_run)
    )  # the same numbers, Parzen monitor included


def test_a_learning_rate_cut_given_on_resume_is_the_run_that_had_it_from_the_start(tmp_path, tiny_dir):
    common = ["--data-dir", str(tiny_dir), *SMALL_MNIST]
    cut = ["--lr-milestones", "1", "--lr-gamma", "0.5"]
    straight, half = tmp_path / "straight", tmp_path / "half"
    assert main(["train", "mnist", "--epochs", "2", *cut, "--run-dir", str(straight), *common]) == 0
    assert main(["train", "mnist", "--epochs", "1", "--run-dir", str(half), *common]) == 0
    assert main(["train", "--resume", str(half), "--epochs", "2", *cut, "--no-progress"]) == 0
    first, second = load_weights(straight)[0], load_weights(half)[0]
    assert all(torch.equal(first[k], second[k]) for k in first)
    lr = {m["step"]: m["lr/g"] for m in read_metrics(half) if "lr/g" in m}
    assert lr[5] == pytest.approx(0.1 / 1.000004**5) and lr[15] == pytest.approx(0.05 / 1.000004**15)
    assert config_module.load(half / "config.json").lr_milestones == [1]


def test_a_branch_from_an_older_checkpoint_is_the_run_that_had_its_flags_from_the_start(
    mnist_run, tmp_path, tiny_dir, capsys
):
    cut = ["--lr-milestones", "1", "--lr-gamma", "0.5"]
    straight, branch = tmp_path / "straight", tmp_path / "branch"
    assert (
        main(
            [
                "train",
                "mnist",
                "--epochs",
                "2",
                *cut,
                "--run-dir",
                str(straight),
                "--data-dir",
                str(tiny_dir),
                *SMALL_MNIST,
            ]
        )
        == 0
    )
    source = {p: p.read_bytes() for p in mnist_run.rglob("*") if p.is_file()}
    first = mnist_run / "checkpoints" / "epoch-0001.safetensors"
    assert main(["train", "--resume", str(first), "--run-dir", str(branch), *cut, "--no-progress"]) == 0
    expected, got = load_weights(straight)[0], load_weights(branch)[0]
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    # epoch 1's records are copied, epoch 2's its own; only the rate logged after step 10 (the next
    # update's) differs: the source run had no cut ahead of it
    no_rate = [{k: v for k, v in m.items() if not k.startswith("lr/")} for m in timeless(read_metrics(straight))]
    assert [{k: v for k, v in m.items() if not k.startswith("lr/")} for m in timeless(read_metrics(branch))] == no_rate
    assert [m["lr/g"] for m in read_metrics(branch) if m["step"] == 15] == [pytest.approx(0.05 / 1.000004**15)]
    assert sorted(p.name for p in (branch / "checkpoints").glob("*.safetensors")) == [
        "best.safetensors",
        "epoch-0001.safetensors",
        "epoch-0002.safetensors",
    ]
    assert sorted(p.name for p in (branch / "samples").iterdir()) == ["epoch-0001.png", "epoch-0002.png"]
    assert (branch / "samples" / "epoch-0001.png").read_bytes() == (
        mnist_run / "samples" / "epoch-0001.png"
    ).read_bytes()
    assert config_module.load(branch / "config.json").lr_milestones == [1]
    assert {p: p.read_bytes() for p in mnist_run.rglob("*") if p.is_file()} == source  # the source run untouched

    code, out = gannet("train", "--resume", first, capsys=capsys)  # in place, it would drop epoch 2
    assert code == 2 and "epoch-0001.safetensors is not the newest checkpoint" in out.err
    code, out = gannet("train", "--resume", mnist_run, "--run-dir", branch, capsys=capsys)
    assert code == 2 and "a branch needs a new one" in out.err
    best = mnist_run / "checkpoints" / "best.safetensors"
    code, out = gannet("train", "--resume", best, "--run-dir", tmp_path / "b2", capsys=capsys)
    assert code == 2 and "has no training state beside it" in out.err and not (tmp_path / "b2").exists()


def test_resume_refuses_to_change_the_rate_of_epochs_already_played(mnist_run, capsys):
    before = (mnist_run / "config.json").read_bytes()
    code, out = gannet("train", "--resume", mnist_run, "--epochs", "3", "--lr-milestones", "1", capsys=capsys)
    assert code == 2 and "only at milestones of 2 or later" in out.err
    assert (mnist_run / "config.json").read_bytes() == before


def test_sample_writes_a_grid_and_the_raw_array(mnist_run, tmp_path, capsys):
    code, _ = gannet(
        "sample", mnist_run, "-n", 16, "-o", tmp_path / "grid.png", "--npy", tmp_path / "x.npy", capsys=capsys
    )
    assert code == 0
    x = np.load(tmp_path / "x.npy")
    assert x.shape == (16, 784) and x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    assert Image.open(tmp_path / "grid.png").size == (2 * (4 * 30 + 2),) * 2
    # the same seed gives the same samples; another seed others
    gannet("sample", mnist_run, "-n", 16, "--npy", tmp_path / "y.npy", "--seed", 0)
    gannet("sample", mnist_run, "-n", 16, "--npy", tmp_path / "z.npy", "--seed", 1)
    assert np.array_equal(x, np.load(tmp_path / "y.npy")) and not np.array_equal(x, np.load(tmp_path / "z.npy"))


def test_toy1d_trains_to_the_equilibrium(tmp_path):
    run_dir = tmp_path / "toy"
    assert main(["train", "toy1d", "--epochs", "15", "--run-dir", str(run_dir), "--no-progress"]) == 0
    last = [m for m in read_metrics(run_dir) if "loss/d" in m][-1]  # the last statistics, not the epoch's end
    # at the game's optimum D(x) = D(G(z)) = 1/2 and the discriminator's cost is log 2 = 0.693
    assert last["d/real"] == pytest.approx(0.5, abs=0.05) and last["d/fake"] == pytest.approx(0.5, abs=0.05)
    assert last["loss/d"] == pytest.approx(0.693, abs=0.03)
    code = main(["sample", str(run_dir), "-n", "5000", "--npy", str(tmp_path / "s.npy"), "-o", str(tmp_path / "h.png")])
    samples = np.load(tmp_path / "s.npy")
    assert code == 0 and samples.shape == (5000, 1)
    assert samples.mean() == pytest.approx(2.0, abs=0.15) and samples.std() == pytest.approx(0.5, abs=0.15)


def test_same_seed_same_numbers(tmp_path):
    runs = []
    for name in ("a", "b"):
        assert (
            main(
                [
                    "train",
                    "toy1d",
                    "--epochs",
                    "2",
                    "--run-dir",
                    str(tmp_path / name),
                    "--no-progress",
                    "--update",
                    "simultaneous",
                ]
            )
            == 0
        )
        runs.append(load_weights(tmp_path / name)[0])
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "mnsit"], "Unknown preset 'mnsit'. Did you mean 'mnist'?"),
        (["train", "mnist", "--lrr", "0.1"], "unknown option --lrr; did you mean --lr?"),
        (["train", "mnist", "--batch-sise", "5"], "did you mean --batch-size?"),
        (["train", "mnist", "--lr", "-1"], "--lr must be a positive number."),
        (["train", "mnist", "--k", "0"], "--k must be at least 1."),
        (["train", "mnist", "--update", "sometimes"], "invalid choice: 'sometimes'"),
        (["train", "mnist", "--lr", "fast"], "invalid float value: 'fast'"),
        (["sample", "/no/such/run"], "No run directory or checkpoint at /no/such/run (nor a shipped model: "),
        (["train", "--resume", "/no/such/run"], "not a gannet run directory"),
        (["eval"], "required: METRIC (one of parzen, quality, features, completion)"),
    ],
)
def test_bad_input_is_one_sentence(args, message, capsys):
    code, out = gannet(*args, capsys=capsys)
    assert code == 2
    assert out.err.startswith("gannet: error: ") and message in out.err
    assert out.err.count("\n") == 1 and "Traceback" not in out.err


def test_missing_data_says_where_it_looked(tmp_path, capsys):
    code, out = gannet(
        "train", "mnist", "--data-dir", tmp_path / "none", "--no-download", "--run-dir", tmp_path / "r", capsys=capsys
    )
    assert code == 2 and f"looked in {tmp_path / 'none' / 'mnist'}" in out.err
    assert "gannet data download mnist" in out.err
    assert not (tmp_path / "r").exists()  # nothing to clean up before the corrected command


def test_force_with_missing_data_keeps_the_old_run(mnist_run, tmp_path, capsys):
    run_dir = shutil.copytree(mnist_run, tmp_path / "run")
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    code, out = gannet(
        "train", "mnist", "--data-dir", tmp_path / "none", "--no-download", "--run-dir", run_dir, "--force",
        capsys=capsys,
    )  # fmt: skip
    assert code == 2 and "looked in" in out.err
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before  # --force replaces only at the start


def test_existing_run_directory_is_refused(mnist_run, capsys):
    code, out = gannet("train", "toy1d", "--run-dir", mnist_run, capsys=capsys)
    assert code == 2 and "already exists; pass --resume to continue it or --force to replace it" in out.err
    assert (mnist_run / "checkpoints" / "epoch-0002.safetensors").is_file()  # nothing was touched


def test_a_file_as_run_directory_is_one_sentence(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    code, out = gannet("train", "toy1d", "--run-dir", tmp_path / "notes.txt", "--force", capsys=capsys)
    assert code == 2 and "is a file, not a run directory" in out.err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_force_replaces_a_run_directory_and_nothing_else(tmp_path, capsys):
    run_dir = tmp_path / "r"
    assert main(["train", "toy1d", "--epochs", "2", "--run-dir", str(run_dir), "--no-progress"]) == 0
    assert main(["train", "toy1d", "--epochs", "1", "--run-dir", str(run_dir), "--force", "--no-progress"]) == 0
    assert [p.name for p in checkpoints.checkpoint_paths(run_dir)] == ["epoch-0001.safetensors"]  # the new run's
    # evaluations' results, the run's and its checkpoints' (checkpoints.result_path), are gannet's too
    for name in ("parzen.json", "parzen-epoch-0001.json", "quality-best.json", "completion-ema.json"):
        (run_dir / name).write_text("{}")
    (run_dir / "inference-epoch-0001").mkdir()
    assert main(["train", "toy1d", "--epochs", "1", "--run-dir", str(run_dir), "--force", "--no-progress"]) == 0
    assert not (run_dir / "inference-epoch-0001").exists() and not (run_dir / "parzen.json").exists()
    (run_dir / "notes.txt").write_text("mine")  # a user's own file: the folder is no longer only a run
    code, out = gannet("train", "toy1d", "--run-dir", run_dir, "--force", capsys=capsys)
    assert code == 2 and "--force replaces only gannet run directories" in out.err
    assert (run_dir / "notes.txt").read_text() == "mine" and checkpoints.checkpoint_paths(run_dir)


def test_a_checkpoint_that_is_not_gannets_is_refused(tmp_path, capsys):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"{}" * 10)
    code, out = gannet("sample", path, capsys=capsys)
    assert code == 2 and "is not a gannet checkpoint" in out.err


def test_resume_refuses_changed_hyper_parameters(mnist_run, capsys):
    code, out = gannet("train", "--resume", mnist_run, "--lr", "0.5", capsys=capsys)
    assert code == 2 and "--lr cannot change on --resume" in out.err


def test_presets_and_help_document_every_option(capsys):
    assert main(["presets"]) == 0
    listing = capsys.readouterr().out
    assert "mnist" in listing and "toy1d" in listing
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for name in config_module.FIELDS:
        if name != "preset":
            assert f"--{config_module.flag(name)}" in text
    for flag in ("--epochs", "--seed", "--k", "--lr", "--batch-size", "--generator-loss", "--update", "--noise"):
        assert flag in text


def test_the_installed_command_runs(tmp_path):
    """The real entry point, in a fresh process: `python -m gannet` as torchrun would start it."""
    result = subprocess.run(
        [sys.executable, "-m", "gannet", "train", "toy1d", "--epochs", "1", "--run-dir", str(tmp_path / "t")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1" in result.stderr
    assert json.loads((tmp_path / "t" / "config.json").read_text())["dataset"] == "toy1d"
    bad = subprocess.run(
        [sys.executable, "-m", "gannet", "train", "toy1d", "--run-dir", str(tmp_path / "t")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_resume_drops_metrics_logged_after_the_last_checkpoint(tmp_path):
    run_dir = tmp_path / "r"
    assert main(["train", "toy1d", "--epochs", "2", "--run-dir", str(run_dir), "--no-progress"]) == 0
    # as if the process had died in epoch 3, after logging but before its checkpoint
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 250, "loss/d": 9.0}) + "\n")
    assert main(["train", "--resume", str(run_dir), "--epochs", "3", "--no-progress"]) == 0
    logged = [m for m in read_metrics(run_dir) if "loss/d" in m]
    assert [m["step"] for m in logged] == [50, 100, 150, 200, 250, 300] and 9.0 not in [m["loss/d"] for m in logged]
    ends = [(m["step"], m["epoch"]) for m in read_metrics(run_dir) if "time/elapsed" in m]
    assert ends == [(100, 1), (200, 2), (300, 3)]  # each epoch's end on record, with or without a monitor


def test_training_monitors_parzen_and_keeps_the_best_checkpoint(mnist_run):
    monitored = [m for m in read_metrics(mnist_run) if "parzen/valid" in m]
    assert [m["epoch"] for m in monitored] == [1, 2]  # after each of the 2 epochs, counted as on the console
    assert all(0.1 <= m["parzen/sigma"] <= 1.0 for m in monitored)
    tensors, metadata, _ = load_weights(mnist_run / "checkpoints" / "best.safetensors")
    best = max(monitored, key=lambda m: m["parzen/valid"])
    assert float(metadata["parzen/valid"]) == pytest.approx(best["parzen/valid"])
    assert metadata["epoch"] == str(best["epoch"])
    # `best` is not in the rotation: the newest checkpoint of the run is still epoch 2
    assert load_weights(mnist_run)[2].name == "epoch-0002.safetensors"


def test_bare_command_shows_help_and_top_level_errors_read_once(capsys):
    code, out = gannet(capsys=capsys)
    assert code == 0 and "train" in out.out and "eval" in out.out and "figures" in out.out
    code, out = gannet("trian", capsys=capsys)
    assert code == 2 and out.err.startswith("gannet: error: argument COMMAND: invalid choice: 'trian'")


def test_a_relative_data_dir_is_kept_as_the_folder_it_named(tmp_path, monkeypatch):
    # a run's later commands (sample, eval, figures) read data_dir from config.json, maybe elsewhere
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    assert main(["train", "toy1d", "--epochs", "1", "--data-dir", "data", "--run-dir", "run", "--no-progress"]) == 0
    assert config_module.load(tmp_path / "run" / "config.json").data_dir == str(tmp_path.resolve() / "data")


def test_train_help_shows_every_config_field_in_exactly_one_group(capsys):
    from gannet.cli.parsing import CONFIG_GROUPS, NOT_FLAGS

    grouped = [name for names in CONFIG_GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(set(config_module.FIELDS) - set(NOT_FLAGS))  # each once, none left out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert [title.split()[0] for title in CONFIG_GROUPS] == ["data", "model", "optimiser", "run"]
    for title, names in CONFIG_GROUPS.items():
        section = text.split(f"\n{title}:\n")[1].split("\n\n")[0]  # argparse: a blank line ends a group
        shown = re.findall(r"^  --([a-z0-9-]+)", section, flags=re.MULTILINE)  # each option's first spelling
        assert shown == [config_module.flag(n) for n in names]


def test_mnist_fast_is_the_papers_model_trained_faster_and_averaged():
    fast, paper = presets.preset_config("mnist-fast"), presets.preset_config("mnist")
    differ = {f.name for f in dataclasses.fields(fast) if getattr(fast, f.name) != getattr(paper, f.name)}
    # the networks, updates and schedules are the paper's
    assert differ == {"preset", "lr", "generator_lr", "average_from", "epochs"}
    assert (fast.lr, fast.average_from, fast.epochs) == (2 * paper.lr, 16, 80)
    assert fast.generator_lr == pytest.approx(3.5 * paper.lr)


@pytest.mark.parametrize("name", presets.PRESETS)
def test_presets_print_flags_that_parse_back_to_the_preset(name, capsys):
    from gannet.cli import build_parser

    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index(name)
    block = []
    for line in lines[start + 2 :]:  # after the name and the description: its flags, one a line
        if not line.startswith("    "):
            break
        block.append(line.strip())
    assert all(line.startswith("--") for line in block) and " False" not in " ".join(block)
    args = build_parser().parse_args(["train", *shlex.split(" ".join(block))])
    overrides = {field: getattr(args, field) for field in config_module.FIELDS if hasattr(args, field)}
    parsed = config_module.from_dict({**overrides, "preset": name}, presets.preset_config("mnist"))
    assert parsed == presets.preset_config(name)


def test_the_epoch_line_and_metrics_say_the_runs_training_time_across_resumes(tmp_path, tiny_dir, capsys):
    run_dir = tmp_path / "t"
    args = ("--data-dir", tiny_dir, "--run-dir", run_dir, *SMALL_MNIST)
    code, out = gannet("train", "mnist", "--epochs", 1, *args, capsys=capsys)
    assert code == 0 and re.search(r"epoch 1/1 .* s  \(0:\d\d in all\)\n", out.err)
    code, out = gannet("train", "--resume", run_dir, "--epochs", 2, "--no-progress", capsys=capsys)
    assert code == 0
    records = [r for r in read_metrics(run_dir) if "time/elapsed" in r]
    assert [r["epoch"] for r in records] == [1, 2] and all("parzen/valid" in r for r in records)
    assert 0 < records[0]["time/elapsed"] < records[1]["time/elapsed"]  # the second session's clock goes on
    assert [clock(s) for s in (3725.2, 65, 0)] == ["1:02:05", "1:05", "0:00"]


def test_the_advice_after_an_early_stop_fits_what_was_left(tmp_path):
    from gannet.runs import next_step

    missing = tmp_path / "branch"  # a branch stopped before it began keeps no folder
    assert next_step(missing) == f"nothing was written to {missing}: run the same command again"
    (tmp_path / "run").mkdir()
    assert "start again with --force --run-dir" in next_step(tmp_path / "run")
    checkpoints.save(tmp_path / "run", {"generator.w": torch.zeros(1)}, {"epoch": 1, "step": 1}, TrainConfig(), 3, 0)
    assert next_step(tmp_path / "run").endswith(f"continue with `gannet train --resume {tmp_path / 'run'}`")
