"""`gannet export`: the exported file, run by onnxruntime or torch.jit, gives gannet's own samples."""

import json
import sys

import pytest
import torch

from gannet import checkpoints, preset_config, sample, train
from gannet.data import data_shape
from gannet.export import example_inputs, export_generator, run_exported
from gannet.networks import build_networks
from gannet.sampling import load_generator

from .conftest import gannet

pytest.importorskip("onnxruntime")  # the [export] extra: installed by `.[test]` too, so CI runs these
# torch 2.13 marks torch.jit deprecated; its files are still what libtorch (C++) reads
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
FORMATS = {"onnx": "g.onnx", "torchscript": "g.pt"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    """A 1-D toy (unconditional), the 8-Gaussian ring conditioned on its modes, a conditional
    MNIST model (one step, real data) and a convolutional CIFAR-10 generator (built, not trained)."""
    root = tmp_path_factory.mktemp("export")
    made = {
        "toy1d": train(preset_config("toy1d", epochs=1), root / "toy1d", progress_bar=False),
        "ring8": train(preset_config("ring8", epochs=1, conditional=True), root / "ring8", progress_bar=False),
        "mnist": train(
            preset_config("mnist", epochs=1, conditional=True, train_limit=100, parzen_every=0, data_dir=str(data_dir)),
            root / "mnist",
            progress_bar=False,
        ),
    }
    small = {"generator_hidden": [16, 200], "generator_deconv_shape": [2, 10, 10], "discriminator_hidden": [8]}
    config = preset_config("cifar10-conv", **small)
    torch.manual_seed(0)
    weights = checkpoints.flat_weights(*build_networks(config, data_shape(config)))
    made["cifar10-conv"] = checkpoints.save_weights(root / "conv.safetensors", 0, weights, config, {})
    return made


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("name", ["toy1d", "ring8", "mnist", "cifar10-conv"])
def test_the_exported_generator_gives_gannets_samples(runs, name, format, tmp_path):
    path, metadata = export_generator(runs[name], tmp_path / FORMATS[format], format)
    generator, config, _ = load_generator(runs[name])
    for n in (1, 37):  # the batch is free: neither the 3 the graph was made with, nor the check's 5
        inputs = example_inputs(config, n, seed=7)  # the z (and labels) that gannet.sample draws from seed 7
        expected = sample(generator, config, n, seed=7)  # (n, data_dim)
        got = run_exported(path, *inputs, format=format)
        assert got.shape == expected.shape == (n, generator.data_dim)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert metadata["noise"] == config.noise and int(metadata["latent_dim"]) == config.latent_dim
    assert int(metadata["classes"]) == (10 if name == "mnist" else 8 if name == "ring8" else 0)


def test_a_label_given_to_the_exported_graph_is_the_class_drawn(runs, tmp_path):
    path, _ = export_generator(runs["ring8"], tmp_path / "ring.onnx", "onnx")
    generator, config, _ = load_generator(runs["ring8"])
    labels = torch.tensor([0, 7, 3, 3, 5])
    z, _ = example_inputs(config, 5, seed=2)
    expected = sample(generator, config, 5, seed=2, label=labels)  # the same z: labels are drawn after it
    torch.testing.assert_close(run_exported(path, z, labels), expected, atol=1e-5, rtol=0)


def test_the_files_name_the_prior_z_is_drawn_from(runs, tmp_path):
    import onnx

    gannet("export", runs["mnist"], "-o", tmp_path / "g.onnx")
    gannet("export", runs["mnist"], "--format", "torchscript", "-o", tmp_path / "g.pt")
    onnx_metadata = {p.key: p.value for p in onnx.load(tmp_path / "g.onnx").metadata_props}
    extra = {"gannet.json": ""}
    torch.jit.load(tmp_path / "g.pt", _extra_files=extra)
    for metadata in (onnx_metadata, json.loads(extra["gannet.json"])):
        assert metadata["noise"] == "uniform-sqrt3" and metadata["latent_dim"] == "100"
        assert metadata["classes"] == "10" and json.loads(metadata["data_shape"]) == [1, 28, 28]
        assert metadata["source"].endswith("epoch-0001.safetensors")


def test_the_command_infers_the_format_from_the_file_name(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out = gannet("export", runs["toy1d"], "-o", "model.pt", capsys=capsys)
    assert code == 0 and "(torchscript)" in out.err and "input z: (N, 1)" in out.err
    torch.jit.load(tmp_path / "model.pt")
    code, out = gannet("export", runs["ring8"], capsys=capsys)  # no -o: generator.onnx
    assert code == 0 and (tmp_path / "generator.onnx").is_file()
    assert "label: (N,) int64 from 0 to 7" in out.err


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("gannet: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_an_unknown_format_is_one_sentence(runs, tmp_path, capsys):
    assert gannet("export", runs["toy1d"], "--format", "tflite", "-o", tmp_path / "g.tflite") == (2, None)
    assert "invalid choice: 'tflite'" in one_error(capsys)
    with pytest.raises(Exception, match="not an export format; use onnx or torchscript"):
        export_generator(runs["toy1d"], tmp_path / "g.onnx", "tflite")
    assert gannet("export", runs["toy1d"], "--format", "onnx", "-o", tmp_path / "g.pt") == (2, None)
    assert "the file name must end in .onnx" in one_error(capsys)


def test_a_missing_extra_says_what_to_install(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # `import onnxscript` now fails, as when not installed
    assert gannet("export", runs["toy1d"], "-o", tmp_path / "g.onnx") == (2, None)
    assert 'onnxscript is not installed); install them with `pip install -e ".[export]"`' in one_error(capsys)
    assert not list(tmp_path.iterdir())


def test_an_unwritable_output_is_refused_before_any_work(runs, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert gannet("export", runs["toy1d"], "-o", tmp_path / "file" / "g.onnx") == (2, None)
    assert "file is a file, not a folder" in one_error(capsys)
    assert gannet("export", tmp_path / "nothing", "-o", tmp_path / "file" / "g.pt") == (2, None)
    assert "cannot be written" in one_error(capsys)  # the output is checked first


def test_a_source_that_is_not_a_checkpoint_is_one_sentence(tmp_path, capsys):
    (tmp_path / "fake.safetensors").write_text("not a checkpoint")
    assert gannet("export", tmp_path / "fake.safetensors", "-o", tmp_path / "g.onnx") == (2, None)
    assert "is not a gannet checkpoint" in one_error(capsys)
    assert gannet("export", tmp_path / "nowhere", "-o", tmp_path / "g.pt") == (2, None)
    assert "No run directory or checkpoint at" in one_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.safetensors"]


@pytest.mark.parametrize("format", FORMATS)
def test_a_file_that_fails_its_check_is_not_written(runs, tmp_path, monkeypatch, format):
    monkeypatch.setattr("gannet.export.TOLERANCE", -1.0)  # every exported file now "differs"
    (tmp_path / "out").mkdir()
    with pytest.raises(Exception, match=f"The exported {format} file's samples differ from gannet's"):
        export_generator(runs["toy1d"], tmp_path / "out" / FORMATS[format], format)
    assert not list((tmp_path / "out").iterdir())  # neither the file nor its temporary
