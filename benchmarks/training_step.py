"""Training speed: gannet's loop against a plain PyTorch loop, same model, same update.

The plain loop is written the obvious way: a DataLoader over a TensorDataset (batches
collated example by example), the discriminator's and generator's updates as in most
tutorials, and `.item()` on both losses every step. gannet's loop is `gannet.train.play_step`
on data resident as one tensor, statistics kept on the device. Both run the MNIST preset
(batch 100, k = 1) on real MNIST, one after the other in one process, and the script prints
steps/s of each and their ratio.

    python benchmarks/training_step.py --data-dir ../shared/data [--steps 200] [--device cuda]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from gannet.config import TrainConfig
from gannet.data import load_mnist
from gannet.noise import sample_noise
from gannet.train import make_players, play_step


def plain_loop(players, config: TrainConfig, train: torch.Tensor, steps: int, device: torch.device) -> float:
    """The obvious loop; returns seconds for `steps` iterations (after 10 warm-up steps)."""
    G, D = players.generator, players.discriminator
    opt_g, opt_d = players.optimizer_g, players.optimizer_d
    loader = DataLoader(TensorDataset(train), batch_size=config.batch_size, shuffle=True, drop_last=True)
    batches = iter(loader)
    started, losses = None, []
    for i in range(steps + 10):
        if i == 10:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        try:
            (x,) = next(batches)
        except StopIteration:
            batches = iter(loader)
            (x,) = next(batches)
        x = x.to(device)
        z = sample_noise(config.noise, config.batch_size, config.latent_dim, device)
        fake = G(z)
        if config.update == "alternating":
            d_loss = 0.5 * (F.softplus(-D(x)).mean() + F.softplus(D(fake.detach())).mean())
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = F.softplus(-D(G(sample_noise(config.noise, config.batch_size, config.latent_dim, device)))).mean()
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
        else:  # simultaneous: both gradients from one forward pass
            logits_real, logits_fake = D(x), D(fake)
            d_loss = 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())
            g_loss = F.softplus(-logits_fake).mean()
            opt_d.zero_grad()
            opt_g.zero_grad()
            d_grads = torch.autograd.grad(d_loss, list(D.parameters()), retain_graph=True)
            g_grads = torch.autograd.grad(g_loss, list(G.parameters()))
            for p, g in zip(D.parameters(), d_grads):
                p.grad = g
            for p, g in zip(G.parameters(), g_grads):
                p.grad = g
            opt_d.step()
            opt_g.step()
        losses.append((d_loss.item(), g_loss.item()))  # the per-step host sync of most loops
    return time.perf_counter() - started


def gannet_loop(players, config: TrainConfig, train: torch.Tensor, steps: int, device: torch.device) -> float:
    resident = train.to(device)
    per_step = config.batch_size * (config.k if config.update == "alternating" else 1)
    order = torch.randperm(len(resident), device=device)
    total = torch.zeros(4, device=device)
    started = None
    for i in range(steps + 10):
        if i == 10:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        j = i % (len(resident) // per_step)
        total += play_step(players, config, resident[order[j * per_step : (j + 1) * per_step]])
    total.tolist()  # the one sync, as at a logging interval
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    mnist = load_mnist(args.data_dir / "mnist")
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"device {device}; MNIST preset, batch 100, {args.steps} steps each"
    )
    for update in ("simultaneous", "alternating"):
        config = TrainConfig(update=update)
        times = {}
        for name, loop in (("plain", plain_loop), ("gannet", gannet_loop)):
            torch.manual_seed(0)
            players = make_players(config, mnist, device)
            times[name] = loop(players, config, mnist.train, args.steps, device)
        rates = {k: args.steps / v for k, v in times.items()}
        print(
            f"{update:>12}: plain {rates['plain']:6.1f} steps/s ({1000 / rates['plain']:5.1f} ms)   "
            f"gannet {rates['gannet']:6.1f} steps/s ({1000 / rates['gannet']:5.1f} ms)   "
            f"ratio {rates['gannet'] / rates['plain']:.2f}×   "
            f"gannet epoch (500 steps) {500 / rates['gannet']:.1f} s"
        )


if __name__ == "__main__":
    main()
