import copy

import pytest
import torch

from gannet.config import TrainConfig
from gannet.networks import SPLIT_TIES_BELOW, Discriminator, Maxout, build_networks, marginal_logits


def test_maxout_is_the_max_over_each_units_pieces():
    torch.manual_seed(0)
    layer = Maxout(7, units=3, pieces=4)
    x = torch.randn(5, 7)
    W, b = layer.linear.weight, layer.linear.bias
    expected = torch.empty(5, 3)
    for n in range(5):
        for unit in range(3):
            pieces = [x[n] @ W[unit * 4 + j] + b[unit * 4 + j] for j in range(4)]
            expected[n, unit] = max(pieces)
    assert torch.allclose(layer(x), expected, atol=1e-6)


def test_maxout_gradient_flows_only_through_the_winning_piece():
    layer = Maxout(2, units=1, pieces=2)
    with torch.no_grad():
        layer.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        layer.linear.bias.zero_()
    layer(torch.tensor([[3.0, 1.0]])).sum().backward()
    assert layer.linear.weight.grad.tolist() == [[3.0, 1.0], [0.0, 0.0]]


def test_maxout_splits_a_ties_gradient_on_narrow_inputs_and_matches_amax_on_wide_ones():
    narrow = Maxout(2, units=1, pieces=3)  # a zero input ties every piece at its (zero) bias
    with torch.no_grad():
        narrow.linear.bias.zero_()
    narrow(torch.zeros(1, 2)).sum().backward()
    assert narrow.split_ties and narrow.linear.bias.grad.tolist() == pytest.approx([1 / 3] * 3)

    torch.manual_seed(0)
    wide = Maxout(SPLIT_TIES_BELOW, units=6, pieces=5)
    assert not wide.split_ties
    x = torch.randn(8, SPLIT_TIES_BELOW)
    g = torch.randn(8, 6)
    splitting = copy.deepcopy(wide)
    splitting.split_ties = True  # amax
    for layer in (wide, splitting):
        (layer(x) * g).sum().backward()
    # no ties: the scatter to the winner gives amax's gradient bit for bit
    assert torch.equal(wide(x), splitting(x))
    assert torch.equal(wide.linear.weight.grad, splitting.linear.weight.grad)
    assert torch.equal(wide.linear.bias.grad, splitting.linear.bias.grad)


def test_paper_mnist_networks_have_the_papers_sizes():
    G, D = build_networks(TrainConfig(), 784)
    # G: 100·1200 + 1200 + 1200·1200 + 1200 + 1200·784 + 784; D: 784·1200 + 1200 + 240·1200 + 1200 + 240 + 1
    assert sum(p.numel() for p in G.parameters()) == 2_503_984
    assert sum(p.numel() for p in D.parameters()) == 1_231_441
    assert [m.units for m in D.hidden] == [240, 240] and D.hidden[0].pieces == 5


def test_initial_weights_are_uniform_in_the_papers_ranges():
    torch.manual_seed(0)
    G, D = build_networks(TrainConfig(), 784)
    for module, r in ((G, 0.05), (D, 0.005)):
        weights = [p for n, p in module.named_parameters() if n.endswith("weight")]
        assert all(w.abs().max() <= r for w in weights)
        assert all(w.abs().max() > 0.9 * r for w in weights)  # and actually spread that wide
    assert all((p == 0).all() for n, p in D.named_parameters() if n.endswith("bias"))


def test_generator_output_bias_is_the_logit_of_the_pixel_means():
    data = torch.tensor([[0.0, 1.0, 0.5], [0.0, 1.0, 0.25]])
    G, _ = build_networks(TrainConfig(latent_dim=4, generator_hidden=[8]), 3, data)
    bias = G.output.bias
    # means 0, 1, 0.375: clipped to 1e-7 and 1 - 1e-7 first, so the bias is finite
    assert bias[0].item() == pytest.approx(-16.118, abs=1e-3)  # logit(1e-7)
    assert bias[1].item() == pytest.approx(16.1, abs=0.1)  # logit(1 - 1e-7) in float32
    assert bias[2].item() == pytest.approx(-0.5108256, abs=1e-6)  # log(0.375 / 0.625)
    assert torch.equal(bias, marginal_logits(data))


def test_generator_makes_pixels_in_the_unit_interval():
    G, _ = build_networks(TrainConfig(), 784)
    x = G(torch.randn(10, 100) * 5)
    assert x.shape == (10, 784) and x.min() >= 0 and x.max() <= 1


def test_dropout_keeps_inputs_with_the_given_probability_and_scales_them():
    torch.manual_seed(0)
    D = Discriminator(1000, [4], pieces=2, input_keep=0.8, hidden_keep=0.5)
    seen = {}
    D.hidden[0].linear.register_forward_hook(lambda m, inputs, out: seen.update(x=inputs[0]))
    D.train()
    D(torch.ones(20, 1000))
    values = seen["x"].unique().tolist()
    assert values == pytest.approx([0.0, 1.25])  # inverted dropout: kept inputs scaled by 1/0.8
    assert (seen["x"] == 0).float().mean().item() == pytest.approx(0.2, abs=0.01)
    D.eval()
    D(torch.ones(3, 1000))
    assert torch.equal(seen["x"], torch.ones(3, 1000))  # no dropout, no scaling at evaluation
