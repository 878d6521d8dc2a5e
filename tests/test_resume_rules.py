"""What a resumed run may change, said the same way from Python and from the command line; what
a resume announces; and every allowed value of a choice is one its implementation has."""

import dataclasses

import pytest
import torch

from gannet import checkpoints, train
from gannet.config import FIELDS, RESUMABLE, TrainConfig
from gannet.data import toy1d
from gannet.errors import GannetError
from gannet.game import STAT_NAMES, examples_per_step, make_players, step
from gannet.networks import ACTIVATIONS
from gannet.presets import preset_config
from tests.conftest import gannet

TOY = dict(epochs=2, log_every=50)  # toy1d: 100 steps an epoch


@pytest.fixture
def toy_run(tmp_path):
    config = preset_config("toy1d", **TOY)
    return train(config, tmp_path / "toy", progress_bar=False), config


def test_every_resumable_name_is_a_config_field():
    assert set(FIELDS) >= RESUMABLE and "lr" not in RESUMABLE and "epochs" in RESUMABLE


def test_the_python_api_refuses_a_changed_hyper_parameter_with_the_cli_sentence(toy_run, capsys):
    run_dir, config = toy_run
    before = {p.name: p.read_bytes() for p in checkpoints.checkpoint_paths(run_dir)}
    with pytest.raises(GannetError) as refused:
        train(dataclasses.replace(config, lr=0.5, epochs=3), run_dir, resume=True, progress_bar=False)
    sentence = "A resumed run keeps its hyper-parameters; --lr cannot change on --resume."
    assert str(refused.value) == sentence
    code, out = gannet("train", "--resume", run_dir, "--lr", 0.5, "--epochs", 3, capsys=capsys)
    assert code == 2 and out.err.strip() == f"gannet: error: {sentence}"
    assert {p.name: p.read_bytes() for p in checkpoints.checkpoint_paths(run_dir)} == before  # nothing written
    # several at once, named in the config's order; the same value again is no change
    with pytest.raises(GannetError, match=r"; --batch-size, --seed cannot change"):
        train(dataclasses.replace(config, seed=7, batch_size=50), run_dir, resume=True, progress_bar=False)
    train(dataclasses.replace(config, epochs=3, lr=config.lr), run_dir, resume=True, progress_bar=False)
    assert checkpoints.checkpoint_paths(run_dir)[-1].name == "epoch-0003.safetensors"


def test_a_resume_names_its_preset_or_none_and_says_where_it_starts(toy_run, tmp_path, capsys):
    run_dir, _ = toy_run
    code, out = gannet("train", "ring8", "--resume", run_dir, "--epochs", 3, capsys=capsys)
    assert code == 2 and f"{run_dir} is a run of preset 'toy1d', not 'ring8'" in out.err
    code, out = gannet("train", "toy1d", "--resume", run_dir, "--epochs", 3, "--no-progress", capsys=capsys)
    assert code == 0
    assert f"gannet: resuming 'toy1d' in {run_dir} from step 200 (after epoch 2 of 3)" in out.err.splitlines()
    first = checkpoints.checkpoint_paths(run_dir)[0]  # epoch 1's
    branch = tmp_path / "branch"
    code, out = gannet("train", "--resume", first, "--run-dir", branch, "--no-progress", capsys=capsys)
    assert code == 0
    assert (
        f"gannet: branching {branch} off {first}, from step 100 (after epoch 1 of 2)" in out.err.splitlines()
    )  # its config: 2 epochs
    code, out = gannet("train", "toy1d", "--epochs", 1, "--run-dir", tmp_path / "new", "--no-progress", capsys=capsys)
    assert code == 0 and out.err.startswith(f"gannet: training 'toy1d' for 1 epoch in {tmp_path / 'new'}\n")


def test_a_resume_keeps_the_checkpoints_kept_before_and_may_take_the_runs_own_config(tmp_path, capsys):
    run_dir = tmp_path / "kept"
    train(preset_config("toy1d", epochs=4, keep_every=1, keep_checkpoints=1), run_dir, progress_bar=False)
    names = [f"epoch-{e:04d}.safetensors" for e in range(1, 6)]
    assert [p.name for p in checkpoints.checkpoint_paths(run_dir)] == names[:4]
    # a preset's config: --keep-every 0 from now on, but what was kept under 1 stays for `gannet average`
    train(preset_config("toy1d", epochs=5, keep_checkpoints=1), run_dir, resume=True, progress_bar=False)
    assert [p.name for p in checkpoints.checkpoint_paths(run_dir)] == names
    # no config: the run's own (config.json, now epochs 5): nothing left to train, and it says so
    capsys.readouterr()
    assert train(None, run_dir, resume=True, progress_bar=False) == run_dir
    err = capsys.readouterr().err
    assert "(after epoch 5 of 5; nothing to train: raise --epochs to go on)" in err
    assert [p.name for p in checkpoints.checkpoint_paths(run_dir)] == names
    with pytest.raises(GannetError, match="needs a config, unless it resumes"):
        train(None, tmp_path / "fresh")


@pytest.mark.parametrize(
    "name", [name for name, f in FIELDS.items() if f.metadata["choices"]] + ["generator_activations"]
)
def test_every_allowed_value_of_a_choice_trains(name):
    """Each value the config accepts is one its implementation has: one step of the game on the
    toy, with finite statistics."""
    data = toy1d()
    values = FIELDS[name].metadata["choices"] or tuple(ACTIVATIONS)
    for value in values:
        config = preset_config("toy1d", **{name: [value] if name == "generator_activations" else value})
        torch.manual_seed(0)
        players = make_players(config, data, torch.device("cpu"))
        batch = data.train[: examples_per_step(config)]
        stats = dict(zip(STAT_NAMES, step(players, config, batch).tolist()))
        assert all(torch.isfinite(torch.tensor([stats["loss/d"], stats["loss/g"]]))), (name, value)
    with pytest.raises(GannetError, match=f"--{name.replace('_', '-')}"):
        TrainConfig(**{name: ["tanh"] if name == "generator_activations" else "tanh"}).validate()
