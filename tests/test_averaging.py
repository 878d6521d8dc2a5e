"""The generator averaged over epochs: during training (--average-from) and after it (`gannet average`)."""

import json

import pytest
import torch

from gannet import checkpoints
from gannet.config import TrainConfig
from gannet.metrics import read_metrics
from gannet.parzen import monitor_parzen
from gannet.sampling import load_generator
from tests.conftest import SMALL_MNIST, gannet


def generator_and_discriminator(path):
    tensors, metadata, _ = checkpoints.load_weights(path)
    return (*checkpoints.split_weights(tensors), metadata)


def test_keep_every_spares_the_checkpoints_of_every_nth_epoch(tmp_path):
    for epoch in range(1, 8):
        weights = {"generator.w": torch.full((2,), float(epoch))}
        checkpoints.save(tmp_path, weights, {"epoch": epoch, "step": epoch}, TrainConfig(), keep=2, keep_every=3)
    kept = [p.name for p in checkpoints.checkpoint_paths(tmp_path)]
    assert kept == ["epoch-0003.safetensors", "epoch-0006.safetensors", "epoch-0007.safetensors"]
    assert all(checkpoints.state_path(tmp_path / "checkpoints" / name).is_file() for name in kept)


def test_the_average_kept_in_training_is_the_mean_of_the_checkpoints_and_survives_a_resume(
    tmp_path, tiny_dir, tiny_mnist, capsys
):
    # on the CPU, as the monitor is recomputed below: the same numbers to the last bits
    common = ["--data-dir", tiny_dir, "--device", "cpu", "--average-from", 2, "--keep-checkpoints", 5, *SMALL_MNIST]
    run, half = tmp_path / "run", tmp_path / "half"
    code, out = gannet("train", "mnist", "--epochs", 3, "--run-dir", run, *common, capsys=capsys)
    mean_file = run / "checkpoints" / "average.safetensors"
    said = f"the mean generator, which `gannet sample {run}` and `gannet eval` take, is {mean_file}."
    assert code == 0 and said in out.err
    folder = run / "checkpoints"
    g2, _, _ = generator_and_discriminator(folder / "epoch-0002.safetensors")
    g3, d3, _ = generator_and_discriminator(folder / "epoch-0003.safetensors")
    g, d, metadata = generator_and_discriminator(folder / "average.safetensors")
    assert metadata["epoch"] == "3" and metadata["averaged_epochs"] == "2-3"
    for name in g3:
        assert torch.equal(g[name], ((g2[name].double() + g3[name].double()) / 2).float())
        assert not torch.equal(g[name], g3[name])
    assert all(torch.equal(d[name], d3[name]) for name in d3)
    # the training monitor scores the mean generator too, from the first averaged epoch on
    monitored = {r["epoch"]: r for r in read_metrics(run) if "parzen/valid" in r}
    assert [e for e, r in sorted(monitored.items()) if "parzen/valid_average" in r] == [2, 3]  # epochs 2 and 3
    mean_generator, config, _ = load_generator(folder / "average.safetensors")
    again = monitor_parzen(mean_generator, config, tiny_mnist, torch.device("cpu"), "parzen/valid_average")
    last_generator, _, _ = load_generator(folder / "epoch-0003.safetensors")
    last = monitor_parzen(last_generator, config, tiny_mnist, torch.device("cpu"))
    # each score is its own generator's, recomputed, and the two differ
    assert monitored[3]["parzen/valid_average"] == pytest.approx(again["parzen/valid_average"], rel=1e-9)
    assert monitored[3]["parzen/valid"] == pytest.approx(last["parzen/valid"], rel=1e-9)
    assert again["parzen/valid_average"] != last["parzen/valid"]
    # the run stands for its mean generator: scoring it scores the mean, and names the last
    small = ["--num-samples", 200, "--num-valid", 50, "--num-test", 50, "--no-ceiling", "--data-dir", tiny_dir]
    code, out = gannet("eval", "parzen", run, *small, "-o", tmp_path / "run.json", capsys=capsys)
    assert code == 0 and out.out.startswith(f"{folder / 'average.safetensors'}: LL = ")
    last, kept = folder / "epoch-0003.safetensors", run / "parzen-epoch-0003.json"
    hint = f"the run's last generator: gannet eval parzen {last} (with the same options; into {kept})"
    assert hint in out.out
    for name in ("average", "epoch-0003"):
        assert gannet("eval", "parzen", folder / f"{name}.safetensors", *small, "-o", tmp_path / f"{name}.json")[0] == 0
    scores = {name: json.loads((tmp_path / f"{name}.json").read_text()) for name in ("run", "average", "epoch-0003")}
    run_ll, mean_ll, last_ll = (scores[name]["log_likelihood"] for name in ("run", "average", "epoch-0003"))
    assert run_ll == mean_ll != last_ll

    # the same mean from the kept checkpoints, after training
    code, out = gannet("average", run, "--epochs", "2-3", capsys=capsys)
    assert code == 0 and "mean generator of 2 checkpoints" in out.out
    g_after, _, metadata = generator_and_discriminator(folder / "average-0002-0003-every-1.safetensors")
    assert metadata["averaged_epochs"] == "2,3"
    assert all(torch.equal(g_after[name], g[name]) for name in g)

    # a run stopped after epoch 2 and resumed: the sums travel in the checkpoint's state
    assert gannet("train", "mnist", "--epochs", 2, "--run-dir", half, *common)[0] == 0
    assert gannet("train", "--resume", half, "--epochs", 3, "--no-progress")[0] == 0
    g_resumed, _, _ = generator_and_discriminator(half / "checkpoints" / "average.safetensors")
    assert all(torch.equal(g_resumed[name], g[name]) for name in g)
    # and a branch from epoch 2 starts with the source's average of that epoch, then goes on with it
    branch = tmp_path / "branch"
    assert (
        gannet(
            "train",
            "--resume",
            half / "checkpoints" / "epoch-0002.safetensors",
            "--run-dir",
            branch,
            "--epochs",
            2,
            "--no-progress",
        )[0]
        == 0
    )
    assert generator_and_discriminator(branch / "checkpoints" / "average.safetensors")[2]["averaged_epochs"] == "2-2"

    # every other epoch, to another file, which the other commands take like any checkpoint
    g1, _, _ = generator_and_discriminator(folder / "epoch-0001.safetensors")
    mean13 = tmp_path / "mean13.safetensors"
    assert gannet("average", run, "--epochs", "1-3", "--every", 2, "-o", mean13)[0] == 0
    g13, _, _ = generator_and_discriminator(mean13)
    assert all(torch.equal(g13[n], ((g1[n].double() + g3[n].double()) / 2).float()) for n in g13)
    assert gannet("sample", mean13, "-n", 4, "-o", tmp_path / "four.png")[0] == 0
    assert (tmp_path / "four.png").stat().st_size > 0


def test_average_refuses_epochs_it_does_not_have_in_one_sentence(mnist_run, tmp_path, capsys):
    cases = [
        (["--epochs", "1-5"], "has no checkpoint after epoch 3, 4, 5; a run keeps them with --keep-every"),
        (["--epochs", "2-1"], "--epochs takes FIRST-LAST"),
        (["--epochs", "last"], "--epochs takes FIRST-LAST"),
        (["--epochs", "1-2", "--every", "0"], "--every must be at least 1."),
    ]
    for flags, message in cases:
        code, out = gannet("average", mnist_run, *flags, capsys=capsys)
        assert code == 2 and message in out.err and out.err.count("\n") == 1
    code, out = gannet("average", tmp_path, "--epochs", "1-2", capsys=capsys)
    assert code == 2 and "is not a gannet run directory" in out.err
    assert not list((mnist_run / "checkpoints").glob("average*"))


def test_averaging_may_start_on_resume_but_not_change_once_begun(mnist_run, tmp_path, capsys):
    code, out = gannet("train", "--resume", mnist_run, "--average-from", 2, capsys=capsys)
    assert code == 2 and "--average-from may change on --resume only before averaging has begun" in out.err
    branch = tmp_path / "branch"  # from a run that never averaged: from its next epoch on
    last = mnist_run / "checkpoints" / "epoch-0002.safetensors"
    assert gannet("train", "--resume", last, "--run-dir", branch, "--epochs", 3, "--average-from", 3)[0] == 0
    g, _, metadata = generator_and_discriminator(branch / "checkpoints" / "average.safetensors")
    g3, _, _ = generator_and_discriminator(branch / "checkpoints" / "epoch-0003.safetensors")
    assert metadata["averaged_epochs"] == "3-3" and all(torch.equal(g[n], g3[n]) for n in g)
    code, out = gannet("train", "--resume", branch, "--epochs", 4, "--average-from", 4, capsys=capsys)
    assert code == 2 and "(this run has finished 3 epochs, 1 of them averaged)" in out.err
