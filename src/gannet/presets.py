"""Named presets: data, not code. Each is the set of fields that differ from TrainConfig's
defaults (which are the paper's MNIST model), with the reason for each value."""

from __future__ import annotations

import difflib

from gannet.config import TrainConfig, from_dict
from gannet.errors import GannetError

TOY2D = {
    "epochs": 30,
    "latent_dim": 8,
    "noise": "gaussian",
    "generator_hidden": [128, 128],
    "generator_output": "linear",
    "generator_init": 0.2,
    "generator_bias_from_data": False,
    "discriminator_hidden": [128, 128],
    "discriminator_init": 0.2,
    "input_keep": 1.0,
    "hidden_keep": 1.0,
    "optimizer": "adam",
    "lr": 0.001,
    "lr_decay": 1.0,
    "update": "alternating",
    "parzen_every": 0,
}


PRESETS: dict[str, dict] = {
    "mnist": {
        "description": "The paper's MNIST model (Table 1, Figure 2a): maxout D with dropout, "
        "ReLU G, SGD + momentum, simultaneous updates as in the 2014 code.",
        # TrainConfig's defaults are this model; simultaneous updates because the 2014 code
        # that produced Table 1 used them (Algorithm 1's alternating scheme is --update alternating).
        "values": {},
    },
    "mnist-fast": {
        "description": "gannet's own MNIST recipe, not the paper's: its networks and updates at twice the "
        "learning rate for D and 3.5 times for G, for 80 epochs; sample and eval take the mean of G's "
        "weights over epochs 16-80.",
        # docs/fast-mnist.md: the attempts, and why these values (a rate of 0.3 for both players
        # diverges in the first epoch, for G alone it improves both scores from every seed tried,
        # and 0.35 moves the two scores' frontier further; a longer window raises the Parzen score
        # and the FID together, a shorter one lowers both: from epoch 16, the two halves of issue
        # #24's bar have about equal margins in units of their spread over seeds)
        "values": {"lr": 0.2, "generator_lr": 0.35, "average_from": 16, "epochs": 80},
    },
    "toy1d": {
        "description": "Figure 1's setting: 1-D Gaussian data, 1-D uniform z, small MLPs; "
        "no data files, trains in seconds on a CPU.",
        "values": {
            "dataset": "toy1d",
            "epochs": 30,
            "batch_size": 100,
            "latent_dim": 1,  # Figure 1 maps a 1-D uniform z-axis onto x
            "noise": "uniform",
            "generator_hidden": [32, 32],
            "generator_output": "linear",  # x is unbounded, not a pixel
            "generator_init": 0.5,  # small nets need larger weights than the 1200-unit G
            "generator_bias_from_data": False,
            "discriminator_hidden": [32, 32],
            "discriminator_init": 0.5,
            "input_keep": 1.0,  # dropout only slows a 1-D toy down
            "hidden_keep": 1.0,
            "optimizer": "adam",  # converges in a few thousand steps without tuning a schedule
            "lr": 0.002,
            "lr_decay": 1.0,
            "update": "alternating",  # Figure 1 illustrates Algorithm 1's D-then-G steps
            "log_every": 50,
            "parzen_every": 0,  # the histogram with D(x) in samples/ says more than a 1-D Parzen
        },
    },
    "cifar10-fc": {
        "description": "The paper's fully connected CIFAR-10 model (Figure 2c): ReLU-sigmoid G with a "
        "linear output, maxout D; contrast-normalised data (GCN 55).",
        # cifar10_fully_connected.yaml of the 2014 code
        "values": {
            "dataset": "cifar10",
            "noise": "gaussian",  # the yaml sets no prior: the 2014 Generator's default
            "generator_hidden": [8000, 8000],
            "generator_activations": ["relu", "sigmoid"],
            "generator_output": "linear",  # GCN pixels are unbounded
            "generator_output_init": 0.5,
            "generator_bias_from_data": False,
            "discriminator_hidden": [1600, 1600],
            "lr": 0.025,
            "parzen_every": 0,  # Table 1 has no CIFAR-10 row; Parzen needs pixels in [0, 1]
        },
    },
    "cifar10-conv": {
        "description": "The paper's convolutional CIFAR-10 model (Figure 2d): G ends in a transposed "
        "convolution, D has three conv-maxout layers; GCN 55 data.",
        # cifar10_convolutional.yaml of the 2014 code: 32x32 -> pad 4, 8x8 conv -> 33 -> pool 4/2 -> 16
        # -> pad 3, 8x8 -> 15 -> pool 4/2 -> 7 -> pad 3, 5x5 -> 9 -> pool 2/2 -> 5; 192x5x5 -> maxout 500x5
        "values": {
            "dataset": "cifar10",
            "noise": "gaussian",
            "batch_size": 128,
            "generator_hidden": [8000, 8000],
            "generator_activations": ["relu", "sigmoid"],
            "generator_output": "linear",
            "generator_bias_from_data": False,
            "generator_deconv_shape": [80, 10, 10],  # (10 - 1) * 3 + 5 = 32
            "generator_deconv_kernel": 5,
            "generator_deconv_stride": 3,
            "discriminator_conv_channels": [32, 32, 192],
            "discriminator_conv_kernels": [8, 8, 5],
            "discriminator_conv_pads": [4, 3, 3],
            "discriminator_conv_pools": [4, 4, 2],
            "discriminator_conv_pool_strides": [2, 2, 2],
            "discriminator_conv_pieces": 2,
            "discriminator_hidden": [500],
            "lr": 0.004,
            "parzen_every": 0,
        },
    },
    "tfd": {
        "description": "The paper's TFD model (Table 1, Figure 2b): ReLU-sigmoid G, maxout D, max column "
        "norm 1.9365; needs your copy of TFD_48x48.mat.",
        # PAPER.md's sizes (tfd_pretrain/train.yaml; the 2014 code also pretrained G's top, not done here)
        "values": {
            "dataset": "tfd",
            "noise": "gaussian",
            "generator_hidden": [8000, 8000],
            "generator_activations": ["relu", "sigmoid"],
            "discriminator_hidden": [1200, 1200],
            "max_col_norm": 1.9365,
            "lr": 0.05,
        },
    },
    "ring8": {
        "description": "Mode-collapse benchmark: 8 Gaussians on a circle (radius 2, std 0.02); "
        "a scatter plot of samples each epoch.",
        # the usual small MLPs and Adam of the mode-collapse literature (not a paper model)
        "values": {"dataset": "ring8", **TOY2D},
    },
    "grid25": {
        "description": "Mode-collapse benchmark: a 5x5 grid of Gaussians (spacing 2, std 0.05).",
        "values": {"dataset": "grid25", **TOY2D},
    },
}


def names() -> list[str]:
    return list(PRESETS)


def preset_config(name: str, **overrides) -> TrainConfig:
    """The config of a named preset, with any field overridden by keyword (checked like a
    flag); an unknown name is a GannetError with a suggestion."""
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise GannetError(f"Unknown preset '{name}'.{hint} Known presets: {', '.join(PRESETS)} (see `gannet presets`).")
    return from_dict({"preset": name, **PRESETS[name]["values"], **overrides})
