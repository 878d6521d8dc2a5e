import json
import math

import pytest
import torch

from gannet.data import toy2d_modes
from gannet.quality import class_coverage, frechet_distance, load_classifier, nearest_distances, predict, toy_quality
from gannet.sampling import load_generator, sample

from .conftest import gannet


def test_class_coverage_kl_at_its_extremes():
    assert class_coverage(torch.arange(10).repeat(5)) == ([5] * 10, pytest.approx(0.0, abs=1e-12))
    counts, kl = class_coverage(torch.zeros(7, dtype=torch.long))
    assert counts == [7] + [0] * 9 and kl == pytest.approx(math.log(10))
    _, half = class_coverage(torch.tensor([0, 1] * 4))  # two classes equally: KL = log(10 / 2)
    assert half == pytest.approx(math.log(5))


def test_frechet_distance_against_the_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 2, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0])
    b = torch.randn(4000, 2, generator=g, dtype=torch.float64) * torch.tensor([3.0, 0.5]) + torch.tensor([1.0, -2.0])
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # for (near-)diagonal covariances: Σ_i (μa_i − μb_i)² + (σa_i − σb_i)², from the samples' own moments
    va, vb = a.var(0), b.var(0)
    expected = (a.mean(0) - b.mean(0)).pow(2).sum() + (va.sqrt() - vb.sqrt()).pow(2).sum()
    assert frechet_distance(a, b) == pytest.approx(expected.item(), rel=1e-2)


def test_nearest_distances_by_hand():
    x, reference = torch.tensor([[0.0, 0.0], [3.0, 4.0], [3.0, 1.0]]), torch.tensor([[0.0, 1.0], [3.0, 0.0]])
    # (0,0): 1 to (0,1), 3 to (3,0); (3,4): √18 and 4; (3,1): √9 and 1
    assert nearest_distances(x, reference, chunk=2).tolist() == pytest.approx([1.0, 4.0, 1.0])
    assert nearest_distances(x[:0], reference).shape == (0,)


def test_toy_quality_counts_modes_and_good_samples():
    modes, std = toy2d_modes("ring8")
    on_three = modes[torch.arange(300) % 3]  # exactly on modes 0, 1, 2
    assert toy_quality(on_three, modes, std).modes_covered == 3
    assert toy_quality(on_three, modes, std).high_quality == 1.0
    mixed = torch.cat([on_three, torch.zeros(100, 2)])  # the centre is far from every mode
    assert toy_quality(mixed, modes, std).high_quality == pytest.approx(0.75)


def test_the_shipped_classifier_reads_mnist(mnist):
    classes, features = predict(load_classifier(), mnist.test[:2000])
    assert (classes == mnist.labels["test"][:2000]).double().mean() > 0.97
    assert features.shape == (2000, 64)


def test_eval_quality_for_mnist_and_ring8(mnist_run, tiny_dir, tiny_mnist, tmp_path, capsys):
    code, out = gannet("eval", "quality", mnist_run, "--num-samples", 500, "--data-dir", tiny_dir, capsys=capsys)
    assert code == 0 and "MNIST FID" in out.out
    record = json.loads((mnist_run / "quality.json").read_text())
    assert sum(record["class_counts"]) == 500 and 0 <= record["kl_to_uniform"] <= math.log(10) + 1e-9
    assert record["mnist_fid"] > 0
    assert record["nearest_test_distance"] == pytest.approx(
        nearest_distances(sample(*load_generator(mnist_run)[:2], 500, 0), tiny_mnist.test).mean().item(), rel=1e-5
    )
    run_dir = tmp_path / "ring"
    assert gannet("train", "ring8", "--epochs", 1, "--run-dir", run_dir, "--no-progress")[0] == 0
    code, out = gannet("eval", "quality", run_dir, capsys=capsys)
    assert code == 0 and "/8 modes covered" in out.out
    assert json.loads((run_dir / "quality.json").read_text())["modes"] == 8
