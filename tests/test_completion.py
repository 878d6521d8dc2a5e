"""One model of every conditional p(x_S | x_not S) (--all-conditionals): the mask families, G's
copy-through of the observed pixels, `gannet complete`, and the completion measures by hand."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from gannet import completion
from gannet.config import TrainConfig
from gannet.errors import GannetError
from gannet.export import export_generator, run_exported
from gannet.masks import MASK_FAMILIES, draw_masks, hidden_diversity, named_mask
from gannet.networks import build_networks
from gannet.noise import masked_codes, sample_noise
from gannet.sampling import load_generator

from .conftest import SMALL_MNIST, gannet

SHAPE = (1, 28, 28)


def hidden_of(masks: torch.Tensor) -> torch.Tensor:
    return (masks == 0).view(-1, 28, 28)


def test_each_family_hides_what_it_says():
    rng = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    n = 400
    half = hidden_of(draw_masks(n, SHAPE, rng=rng(), family="half"))
    halves = [torch.zeros(28, 28, dtype=torch.bool) for _ in range(4)]
    halves[0][:14], halves[1][14:], halves[2][:, :14], halves[3][:, 14:] = True, True, True, True
    assert all(any(torch.equal(h, k) for k in halves) for h in half)
    assert all(any(torch.equal(h, k) for h in half) for k in halves)  # all four are drawn
    quadrant = hidden_of(draw_masks(n, SHAPE, rng=rng(), family="quadrant"))
    assert (quadrant.sum((1, 2)) == 196).all()
    assert all(q[:14, :14].all() or q[:14, 14:].all() or q[14:, :14].all() or q[14:, 14:].all() for q in quadrant)
    rectangle = hidden_of(draw_masks(n, SHAPE, rng=rng(), family="rectangle"))
    for r in rectangle:  # one solid rectangle, sides from 7 to 20 pixels
        rows, cols = r.any(1).nonzero().flatten(), r.any(0).nonzero().flatten()
        height, width = len(rows), len(cols)
        assert 7 <= height <= 20 and 7 <= width <= 20 and r.sum() == height * width
        assert rows[-1] - rows[0] + 1 == height and cols[-1] - cols[0] + 1 == width
    rates = hidden_of(draw_masks(n, SHAPE, rng=rng(), family="random")).float().mean((1, 2))
    assert rates.min() < 0.1 and rates.max() > 0.9 and abs(rates.mean() - 0.5) < 0.05  # rates spread over (0, 1)
    assert (draw_masks(10, SHAPE, rng=rng(), family="all") == 0).all()


def test_training_masks_mix_the_families_and_repeat_from_a_seed():
    masks = draw_masks(1000, SHAPE, rng=torch.Generator().manual_seed(0))
    assert masks.shape == (1000, 784) and set(masks.unique().tolist()) == {0.0, 1.0}
    hidden = hidden_of(masks).sum((1, 2))
    assert 150 < (hidden == 784).sum() < 250  # "all": one family of five
    assert 300 < ((hidden == 392) | (hidden == 196)).sum() < 500  # halves and quadrants (and a rare random)
    assert torch.equal(masks, draw_masks(1000, SHAPE, rng=torch.Generator().manual_seed(0)))
    colour = draw_masks(5, (3, 8, 8), rng=torch.Generator().manual_seed(1)).view(5, 3, 8, 8)
    assert torch.equal(colour[:, 0], colour[:, 1]) and torch.equal(colour[:, 0], colour[:, 2])  # a pixel's channels
    assert len(MASK_FAMILIES) == 5


def test_named_masks_and_mask_files(tmp_path):
    top = named_mask("top-half", SHAPE).view(28, 28)
    assert (top[:14] == 0).all() and (top[14:] == 1).all()
    assert (named_mask("right-half", SHAPE).view(28, 28)[:, 14:] == 0).all()
    square = named_mask("square:14", SHAPE).view(28, 28)
    assert (square[7:21, 7:21] == 0).all() and square.sum() == 784 - 196
    random = named_mask("random:0.5", SHAPE, seed=4)
    assert torch.equal(random, named_mask("random:0.5", SHAPE, seed=4)) and 300 < (random == 0).sum() < 490
    picture = np.full((28, 28), 255, np.uint8)
    picture[20:, 3:9] = 0  # dark = hidden
    Image.fromarray(picture).save(tmp_path / "m.png")
    from_file = named_mask(str(tmp_path / "m.png"), SHAPE).view(28, 28)
    assert (from_file[20:, 3:9] == 0).all() and from_file.sum() == 784 - 48
    Image.fromarray(picture[:10]).save(tmp_path / "small.png")
    see_through = np.zeros((28, 28, 4), np.uint8)
    see_through[..., :3], see_through[..., 3] = 255, 255
    see_through[:4, :, 3] = 0  # white but transparent: hidden too
    Image.fromarray(see_through).save(tmp_path / "alpha.png")
    assert (named_mask(str(tmp_path / "alpha.png"), SHAPE).view(28, 28)[:4] == 0).all()
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(tmp_path / "white.png")
    for spec, words in (
        ("square:29", "square:N hides an N×N square: N from 1 to 28"),
        ("square:-1", "N from 1 to 28, not -1"),
        ("random:1.5", "probability RATE in (0, 1]"),
        ("random:.", "probability RATE in (0, 1], not ."),
        ("random:0.0001", "hides no pixel of these 28×28 images"),
        (str(tmp_path / "white.png"), "hides no pixel"),
        ("middle", "--mask takes top-half"),
        (str(tmp_path / "small.png"), "the model's images are 28×28"),
        (str(tmp_path / "none.png"), "No mask file"),
    ):
        with pytest.raises(GannetError, match=re.escape(words)):
            named_mask(spec, SHAPE)


def test_g_never_changes_the_observed_pixels():
    config = TrainConfig(all_conditionals=True)
    torch.manual_seed(0)
    generator, discriminator = build_networks(config, SHAPE)
    rng = torch.Generator().manual_seed(2)
    x, masks = torch.rand(64, 784, generator=rng), draw_masks(64, SHAPE, rng=rng)
    z = sample_noise(config.noise, 64, config.latent_dim, generator=rng)
    filled = generator(masked_codes(z, x, masks))
    assert torch.equal(filled[masks == 1], x[masks == 1])  # bit for bit
    assert not torch.equal(filled[masks == 0], x[masks == 0])
    assert discriminator(torch.cat([filled, masks], 1)).shape == (64,)  # D reads the image beside its mask


def test_diversity_and_accuracy_by_hand():
    completions = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 3.0], [0.0, 0.0, 5.0]])
    mask = torch.tensor([1.0, 1.0, 0.0])
    # distances over the hidden pixel: |1-3| = 2, |1-5| = 4, |3-5| = 2; mean over the 6 ordered pairs
    assert hidden_diversity(completions, mask) == pytest.approx(8 / 3)

    class ByFirstPixel(torch.nn.Module):  # reads an image as digit round(10 · its first pixel)
        def features(self, x):
            return x

        def head(self, f):
            return torch.nn.functional.one_hot((f[:, 0] * 10).round().long(), 10).float()

    images = torch.tensor([[0.3, 0.0, 0.0], [0.7, 0.0, 0.0]])
    filled = torch.stack([images, images.flip(0)], 1)  # (2 images, 2 completions, 3): right, then wrong
    filled[:, :, 2] = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
    scores = completion.scores(filled, mask, torch.tensor([3, 7]), ByFirstPixel())
    assert scores == {"accuracy": 0.5, "diversity": pytest.approx((2 + 0) / 2)}
    train = torch.tensor([[0.0, 0.0, 0.2], [0.0, 0.0, 0.6]])
    mean = completion.mean_fill(images, mask, train)  # the hidden pixel gets the training mean, 0.4
    assert mean.shape == (2, 1, 3) and torch.allclose(mean[:, 0], torch.tensor([[0.3, 0.0, 0.4], [0.7, 0.0, 0.4]]))


@pytest.fixture
def masked_run(tmp_path, tiny_dir):
    run_dir = tmp_path / "everything"
    args = ["--all-conditionals", "--epochs", 1, "--data-dir", tiny_dir, "--run-dir", run_dir, *SMALL_MNIST]
    assert gannet("train", "mnist", *args)[0] == 0
    return run_dir


def test_complete_draws_the_masked_image_then_its_completions(masked_run, tiny_dir, tiny_mnist, tmp_path, capsys):
    out = tmp_path / "fill.png"
    args = ("--mask", "square:10", "-n", 3, "--images", "test:2-6", "--data-dir", tiny_dir, "-o", out)
    code, captured = gannet("complete", masked_run, *args, capsys=capsys)
    assert code == 0 and "3 completions of 5 test images (100 of 784 pixels hidden: square:10)" in captured.err
    picture = np.asarray(Image.open(out), dtype=np.float32) / 255  # 5 rows of 1 + 3 images, 2 px padding, ×2
    assert picture.shape == (2 * (5 * 30 + 2), 2 * (4 * 30 + 2))
    generator, config, _ = load_generator(masked_run)
    mask = named_mask("square:10", SHAPE)
    filled = completion.complete(generator, config, tiny_mnist.test[2:7], mask, 3, seed=0)
    for row in range(5):
        for column in range(4):
            top, left = 2 * (2 + 30 * row), 2 * (2 + 30 * column)
            cell = torch.from_numpy(picture[top : top + 56 : 2, left : left + 56 : 2].copy()).flatten()
            image = tiny_mnist.test[2 + row]
            expected = completion.shown_masked(image, mask, SHAPE) if column == 0 else filled[row, column - 1]
            assert torch.allclose(cell, expected, atol=1 / 255 + 1e-6)
    hidden = picture[2 * (2 + 9) : 2 * (2 + 19) : 2, 2 * (2 + 9) : 2 * (2 + 19) : 2]  # the first cell's square
    assert set(np.round(hidden.flatten() * 255).astype(int)) == {round(255 * v) for v in completion.SHADE}
    code, _ = gannet("sample", masked_run, "-n", 16, "-o", tmp_path / "s.png", capsys=capsys)  # whole images
    assert code == 0 and (tmp_path / "s.png").is_file()


def test_eval_completion_scores_each_family_beside_the_baselines(masked_run, mnist_run, tiny_dir, capsys):
    args = ("--baseline", mnist_run, "--num-images", 6, "-n", 2, "--data-dir", tiny_dir)
    code, out = gannet("eval", "completion", masked_run, *args, capsys=capsys)
    assert code == 0 and "best match" in out.out and "mean image" in out.out
    table = json.loads((masked_run / "completion.json").read_text())["table"]
    assert set(table) == {"random", "rectangle", "half", "quadrant"}
    assert table["half"]["hidden_share"] == pytest.approx(0.5) and table["quadrant"]["hidden_share"] == 0.25
    for row in table.values():
        assert row["mean image"]["diversity"] == 0  # one filling per image
        assert all(0 <= row[m]["accuracy"] <= 1 for m in ("model", "best match", "mean image"))


def test_the_exported_completer_takes_z_images_and_masks(masked_run, tmp_path):
    path, metadata = export_generator(masked_run, tmp_path / "g.pt", "torchscript")
    assert metadata["inputs"] == "z, observed, mask"
    generator, config, _ = load_generator(masked_run)
    rng = torch.Generator().manual_seed(5)
    z, x, masks = torch.rand(7, 100, generator=rng), torch.rand(7, 784, generator=rng), draw_masks(7, SHAPE, rng=rng)
    expected = generator(masked_codes(z, x, masks)).detach()
    torch.testing.assert_close(run_exported(path, z, x, masks, format="torchscript"), expected, atol=1e-5, rtol=0)
    x[masks == 0] = float("nan")  # "hidden pixels any value": not even NaN reaches the output
    torch.testing.assert_close(run_exported(path, z, x, masks, format="torchscript"), expected, atol=1e-5, rtol=0)


def test_what_a_completer_cannot_do_is_one_sentence(masked_run, mnist_run, tiny_dir, tmp_path, capsys):
    for args, words in (
        (("complete", mnist_run, "--data-dir", tiny_dir), "needs a model trained with --all-conditionals"),
        (("complete", masked_run, "--images", "test:5-2"), "'5-2' is not an index or a range"),
        (("complete", masked_run, "--images", "exam:1"), "--images takes SPLIT:INDICES"),
        (("complete", masked_run, "--images", "test:0-99999999999999999999"), "test has 2,000 images (0 to 1,999)"),
        (("eval", "completion", masked_run, "--num-images", 2001), "MNIST has 2,000 test images, not 2,001"),
        (("eval", "completion", masked_run, "-n", 10**6), "with -n 1,000,000 needs about"),
        (("infer", masked_run), "is a model of every conditional"),
        (("eval", "features", masked_run), "is --all-conditionals"),
        (("train", "toy1d", "--all-conditionals", "--run-dir", tmp_path / "t"), "completes images; toy1d holds points"),
        (("train", "mnist", "--all-conditionals", "--conditional", "--run-dir", tmp_path / "c"), "cannot be combined"),
    ):
        code, out = gannet(*args, capsys=capsys)
        assert code == 2 and words in out.err, (args, out.err)
