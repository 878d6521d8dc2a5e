"""The two players: an MLP generator G(z) and a maxout discriminator D(x) (PAPER.md)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from gannet.errors import GannetError
from gannet.noise import num_classes

if TYPE_CHECKING:
    from gannet.config import TrainConfig


class Maxout(nn.Module):
    """h_i = max_j (x·W_ij + b_ij): `units` outputs, each the max of `pieces` affine maps.

    Unit i's pieces are columns i·pieces … i·pieces + pieces − 1 of one Linear layer, the
    layout of pylearn2's Maxout, so weights carry over column for column.
    """

    def __init__(self, in_features: int, units: int, pieces: int) -> None:
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)
        # Pieces tie only where a unit's whole input is zero (all pieces then equal their biases).
        # Input dropout does that often on a few-dimensional input (the toy sets of Figure 1), where
        # `amax` must split the gradient between the tied pieces to keep the game the same; on wider
        # inputs a tie is never met, and `max(dim)`'s backward (one scatter to the winning piece)
        # costs a quarter of amax's (benchmarks/README.md) and gives the same numbers.
        self.split_ties = in_features < SPLIT_TIES_BELOW

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)  # (B, units * pieces)
        z = z.view(*z.shape[:-1], self.units, self.pieces)  # (B, units, pieces)
        return z.amax(dim=-1) if self.split_ties else z.max(dim=-1).values  # (B, units)


SPLIT_TIES_BELOW = 64  # input width under which a Maxout layer splits tied pieces' gradient


ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}  # of G's hidden layers
GENERATOR_OUTPUTS = ("sigmoid", "linear")  # G's output unit


class Generator(nn.Module):
    """G(z): hidden layers (ReLU or sigmoid), then either a linear map to the data with a
    sigmoid (pixels in [0, 1]) or linear output, or — for the convolutional CIFAR-10 model —
    the last hidden layer reshaped to `deconv_shape` (C, H, W) and one transposed
    convolution to the image, with an untied bias per output pixel (the 2014 Deconv layer).
    A conditional G's input is z followed by a one-hot label (noise.sample_codes)."""

    def __init__(
        self,
        latent_dim: int,
        hidden: list[int],
        data_shape: tuple[int, ...],
        output: str,
        activations: list[str] | None = None,
        deconv_shape: list[int] | None = None,
        deconv_kernel: int = 5,
        deconv_stride: int = 3,
        num_classes: int = 0,
        masked: bool = False,
    ) -> None:
        super().__init__()
        activations = activations or ["relu"]
        if len(activations) == 1:
            activations = activations * len(hidden)
        layers: list[nn.Module] = []
        pixels = math.prod(data_shape)
        # a conditional G reads z and the one-hot label; an --all-conditionals one z, the observed
        # pixels and the mask (noise.masked_codes)
        width = latent_dim + num_classes + (2 * pixels if masked else 0)
        self.masked = masked
        self.condition_width = pixels if masked else num_classes  # the end of G's input that D sees too
        for h, activation in zip(hidden, activations):
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            width = h
        self.hidden = nn.Sequential(*layers)
        self.data_shape = tuple(data_shape)
        self.latent_dim, self.data_dim = latent_dim, math.prod(data_shape)
        self.deconv_shape = tuple(deconv_shape or ())
        if self.deconv_shape:
            channels = self.deconv_shape[0]
            self.output = nn.ConvTranspose2d(channels, data_shape[0], deconv_kernel, deconv_stride, bias=False)
            self.output_bias = nn.Parameter(torch.zeros(data_shape))  # untied: one per pixel
        else:
            self.output = nn.Linear(width, self.data_dim)
        self.sigmoid_output = output == "sigmoid"

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.hidden(z)  # (B, width)
        if self.deconv_shape:
            a = (self.output(h.view(-1, *self.deconv_shape)) + self.output_bias).flatten(1)  # (B, C·H·W)
        else:
            a = self.output(h)  # (B, data_dim)
        x = torch.sigmoid(a) if self.sigmoid_output else a
        if self.masked:  # the observed pixels copied through: G draws only the hidden ones
            observed, mask = z[:, -2 * self.data_dim : -self.data_dim], z[:, -self.data_dim :]  # (B, D) each
            x = observed + (1 - mask) * x
        return x


class ConvMaxout(nn.Module):
    """pylearn2's MaxoutConvC01B: a convolution with `channels`·`pieces` output maps, the max
    over each unit's `pieces` maps, then max-pooling (windows may overhang the edge, as in
    cuda-convnet: ceil mode)."""

    def __init__(
        self, in_channels: int, channels: int, pieces: int, kernel: int, pad: int, pool: int, pool_stride: int
    ) -> None:
        super().__init__()
        self.channels, self.pieces = channels, pieces
        self.conv = nn.Conv2d(in_channels, channels * pieces, kernel, padding=pad)
        self.pool = nn.MaxPool2d(pool, pool_stride, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.conv(x)  # (B, channels·pieces, H, W)
        b, _, h, w = z.shape
        return self.pool(z.view(b, self.channels, self.pieces, h, w).amax(dim=2))


class Discriminator(nn.Module):
    """D(x) as a logit: optional convolutional maxout layers (images only), then maxout
    layers, with dropout on the input and on the output of each hidden layer.

    Dropout is inverted (kept units scaled by 1/keep: 1.25 on the input and 2 on hidden
    layers for the paper's 0.8 and 0.5), so evaluation needs no rescaling, as in pylearn2.
    `convs` holds one (channels, kernel, pad, pool, pool_stride) per convolutional layer.
    A conditional D's input is x followed by a one-hot label (an --all-conditionals D's: x
    followed by its mask; `num_classes` is that width); the label joins the features (never
    dropped out) at the first maxout layer.
    """

    def __init__(
        self,
        data_dim: int,
        hidden: list[int],
        pieces: int,
        input_keep: float,
        hidden_keep: float,
        data_shape: tuple[int, ...] | None = None,
        convs: list[tuple[int, int, int, int, int]] | None = None,
        conv_pieces: int = 2,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.data_shape = tuple(data_shape or (data_dim,))
        self.convs = nn.ModuleList()
        width = data_dim
        if convs:
            shape = self.data_shape  # (C, H, W)
            for channels, kernel, pad, pool, stride in convs:
                layer = ConvMaxout(shape[0], channels, conv_pieces, kernel, pad, pool, stride)
                self.convs.append(layer)
                try:
                    with torch.no_grad():
                        shape = tuple(layer(torch.zeros(1, *shape)).shape[1:])
                except RuntimeError:
                    raise GannetError(
                        f"D's convolutional layers shrink {self.data_shape} images to nothing; "
                        "use smaller kernels or pools, or larger images."
                    ) from None
            width = math.prod(shape)
        widths = [width + num_classes, *hidden]
        self.hidden = nn.ModuleList(Maxout(a, b, pieces) for a, b in zip(widths, hidden))
        self.output = nn.Linear(widths[-1], 1)
        self.input_keep, self.hidden_keep = input_keep, hidden_keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.num_classes:
            x, label = x[:, : -self.num_classes], x[:, -self.num_classes :]  # (B, data_dim), (B, classes)
        h = dropout(x, self.input_keep, self.training)
        if len(self.convs):
            h = h.view(-1, *self.data_shape)  # (B, C, H, W)
            for layer in self.convs:
                h = dropout(layer(h), self.hidden_keep, self.training)
            h = h.flatten(1)
        if self.num_classes:
            h = torch.cat([h, label], dim=1)
        for layer in self.hidden:
            h = dropout(layer(h), self.hidden_keep, self.training)
        return self.output(h).squeeze(-1)  # (B,) logits; D(x) = sigmoid(logit)


def dropout(x: torch.Tensor, keep: float, training: bool) -> torch.Tensor:
    """Inverted dropout: each element kept with probability `keep` and scaled by 1/keep.

    On a CPU the mask is drawn as uniform < keep, which is cheaper there than `F.dropout`'s
    Bernoulli draws (benchmarks/README.md); on a GPU `F.dropout` is one fused kernel and is used
    as it is.
    """
    if not training or keep == 1:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, 1 - keep, True)
    # drawn in float32 whatever x's dtype, so that --precision bf16 drops the units float32 would
    mask = torch.rand(x.shape).lt_(keep).to(x.dtype).mul_(1 / keep)  # (x.shape): 0 or 1/keep
    return x * mask


def init_uniform(module: nn.Module, r: float) -> None:
    """Weights uniform on (−r, r), biases zero: pylearn2's `irange` initialisation."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            nn.init.uniform_(m.weight, -r, r)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def marginal_logits(train: torch.Tensor) -> torch.Tensor:
    """logit of each pixel's mean, clipped to [1e-7, 1 − 1e-7] as pylearn2 did: with it as the
    output bias, a G that ignores z already draws the data's average image."""
    mean = train.double().mean(dim=0).clamp(1e-7, 1 - 1e-7)
    return torch.logit(mean).float()


def build_networks(
    config: TrainConfig, shape: tuple[int, ...] | int, train: torch.Tensor | None = None
) -> tuple[Generator, Discriminator]:
    """Both players for data of one example's `shape` (or a vector length), initialised as
    the paper's code did (uses the torch RNG)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    check_architecture(config, shape)
    generator = Generator(
        config.latent_dim,
        config.generator_hidden,
        shape,
        config.generator_output,
        config.generator_activations,
        config.generator_deconv_shape,
        config.generator_deconv_kernel,
        config.generator_deconv_stride,
        num_classes(config),
        config.all_conditionals,
    )
    discriminator = Discriminator(
        math.prod(shape),
        config.discriminator_hidden,
        config.maxout_pieces,
        config.input_keep,
        config.hidden_keep,
        shape,
        conv_layers(config),
        config.discriminator_conv_pieces,
        math.prod(shape) if config.all_conditionals else num_classes(config),  # the mask beside x, or the label
    )
    init_uniform(generator, config.generator_init)
    if config.generator_output_init is not None:
        init_uniform(generator.output, config.generator_output_init)
    init_uniform(discriminator, config.discriminator_init)
    if config.generator_bias_from_data and train is not None:
        with torch.no_grad():
            bias = generator.output_bias if generator.deconv_shape else generator.output.bias
            bias.copy_(marginal_logits(train).view_as(bias))
    return generator, discriminator


def check_architecture(config: TrainConfig, shape: tuple[int, ...]) -> None:
    """A GannetError when a convolutional player does not fit the data's shape."""
    if (config.discriminator_conv_channels or config.generator_deconv_shape) and len(shape) != 3:
        raise GannetError(f"Convolutional players need image data; {config.dataset} has examples of shape {shape}.")
    if config.generator_deconv_shape:
        c, h, w = config.generator_deconv_shape
        k, s = config.generator_deconv_kernel, config.generator_deconv_stride
        out = (shape[0], (h - 1) * s + k, (w - 1) * s + k)
        if out != tuple(shape):
            raise GannetError(
                f"The transposed convolution makes {out[0]}x{out[1]}x{out[2]} images from {c}x{h}x{w} "
                f"(kernel {k}, stride {s}), but the data's are {shape[0]}x{shape[1]}x{shape[2]}."
            )


def conv_layers(config: TrainConfig) -> list[tuple[int, int, int, int, int]]:
    """D's convolutional layers from the config's parallel lists."""
    return list(
        zip(
            config.discriminator_conv_channels,
            config.discriminator_conv_kernels,
            config.discriminator_conv_pads,
            config.discriminator_conv_pools,
            config.discriminator_conv_pool_strides,
        )
    )


def with_labels(fake: torch.Tensor, codes: torch.Tensor, generator: Generator) -> torch.Tensor:
    """What D sees of a sample: G(codes), followed by its one-hot label if G is conditional, or
    by its mask if G models every conditional (the end of codes, either way)."""
    if not generator.condition_width:
        return fake
    return torch.cat([fake, codes[:, -generator.condition_width :]], dim=1)


@torch.no_grad()
def clip_column_norms(module: nn.Module, max_norm: float) -> None:
    """pylearn2's max_col_norm: rescale each unit's incoming weight vector to an L2 norm of at
    most `max_norm` (applied after every update; the 1e-7 is pylearn2's)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            norms = m.weight.norm(dim=1, keepdim=True)  # (out, 1): one per unit
            m.weight.mul_(norms.clamp(max=max_norm) / (1e-7 + norms))
