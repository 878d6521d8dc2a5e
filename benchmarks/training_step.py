"""Training speed: gannet's loop against a plain PyTorch loop, same model, same update.

The plain loop is written the obvious way: the model as nn.Sequential stacks (maxout by
`amax`, `nn.Dropout`), `torch.optim.SGD` with a LambdaLR decay, a DataLoader over a
TensorDataset (batches collated example by example), the discriminator's and generator's
updates as in most tutorials, and `.item()` on both losses every step. gannet's loop is
`gannet.game.step` with gannet's players, on data resident as one tensor, statistics
kept on the device. Both start from the same weights of the MNIST preset (batch 100, k = 1)
on real MNIST, run one after the other in one process, and the script prints steps/s of each
and their ratio.

    python benchmarks/training_step.py --data-dir ../shared/data [--steps 200] [--device cuda]
        [--precision bf16] [--command]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import itertools
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity
from torch.utils.data import DataLoader, TensorDataset

from gannet import game, networks
from gannet.config import TrainConfig
from gannet.data import load_mnist
from gannet.game import examples_per_step, make_players
from gannet.graphs import epoch_steps, graphs_apply
from gannet.noise import sample_noise
from gannet.optim import learning_rate
from gannet.resources import PRECISIONS, compute_dtype, cpu_name


class PlainMaxout(nn.Module):
    def __init__(self, linear: nn.Linear, units: int, pieces: int) -> None:
        super().__init__()
        self.linear, self.units, self.pieces = linear, units, pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(len(x), self.units, self.pieces).amax(-1)


def plain_models(players, config: TrainConfig) -> tuple[nn.Module, nn.Module]:
    """The preset's G and D written as plain stacks, holding copies of gannet's initial weights."""
    g, d = players.generator, players.discriminator
    G = nn.Sequential(*[m for m in g.hidden], g.output, nn.Sigmoid())
    D = nn.Sequential(nn.Dropout(1 - config.input_keep))
    for layer in d.hidden:
        D.extend([PlainMaxout(layer.linear, layer.units, layer.pieces), nn.Dropout(1 - config.hidden_keep)])
    D.extend([d.output, nn.Flatten(0)])
    G, D = copy.deepcopy(G), copy.deepcopy(D)
    return G.train(), D.train()


def timed(step, steps: int, device: torch.device) -> float:
    """Seconds for `steps` calls of `step()` after 10 warm-up calls, the device drained at both ends."""

    def drain() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(10):
        step()
    drain()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    drain()
    return time.perf_counter() - started


def plain_loop(players, config: TrainConfig, train: torch.Tensor, steps: int, device: torch.device) -> float:
    """The obvious loop; returns seconds for `steps` iterations (after 10 warm-up steps)."""
    G, D = plain_models(players, config)
    opt_g = torch.optim.SGD(G.parameters(), lr=config.lr, momentum=config.momentum)
    opt_d = torch.optim.SGD(D.parameters(), lr=config.lr, momentum=config.momentum)
    schedule = lambda n: learning_rate(config, n, len(train) // config.batch_size) / config.lr  # noqa: E731
    decay = [torch.optim.lr_scheduler.LambdaLR(o, schedule) for o in (opt_g, opt_d)]
    loader = DataLoader(TensorDataset(train), batch_size=config.batch_size, shuffle=True, drop_last=True)

    def epochs():  # a fresh shuffle and collation every epoch, as a training loop has them
        while True:
            yield from loader

    batches, losses = epochs(), []

    def step() -> None:
        (x,) = next(batches)
        x = x.to(device)
        z = sample_noise(config.noise, config.batch_size, config.latent_dim, device)
        fake = G(z)
        if config.update == "alternating":
            d_loss = 0.5 * (F.softplus(-D(x)).mean() + F.softplus(D(fake.detach())).mean())
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            decay[1].step()
            g_loss = F.softplus(-D(G(sample_noise(config.noise, config.batch_size, config.latent_dim, device)))).mean()
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            decay[0].step()
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
            decay[1].step()
            decay[0].step()
        losses.append((d_loss.item(), g_loss.item()))  # the per-step host sync of most loops

    return timed(step, steps, device)


def gannet_loop(
    players, config: TrainConfig, train: torch.Tensor, steps: int, device: torch.device, graphs: bool = True
) -> float:
    """gannet's iteration as the training loop plays it (graphs.epoch_steps): recorded as a
    CUDA graph where graphs.py applies (a GPU; `graphs=False` launches every kernel from Python)."""
    resident = train.to(device)
    per_step = examples_per_step(config)
    order = torch.randperm(len(resident), device=device)
    minibatches = itertools.cycle(range(len(resident) // per_step))
    total = torch.zeros(4, device=device)  # read once, at the end, as at a logging interval

    with epoch_steps(players, dataclasses.replace(config, cuda_graphs=graphs), resident) as iteration:

        def step() -> None:
            j = next(minibatches)
            total.add_(iteration(order[j * per_step : (j + 1) * per_step]))

        return timed(step, steps, device)


def gannet_eager(players, config: TrainConfig, train: torch.Tensor, steps: int, device: torch.device) -> float:
    return gannet_loop(players, config, train, steps, device, graphs=False)


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 (the profiler's C++ start/stop lines)."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def products_only(players, config: TrainConfig, train: torch.Tensor, steps: int, device: torch.device) -> float:
    """The matrix products of one gannet step (their shapes recorded by torch.profiler), replayed
    back to back on fresh contiguous operands in the step's arithmetic (float32, or bfloat16 under
    --precision bf16): a floor that no loop doing these products beats."""
    batch = train[: examples_per_step(config)].to(device)
    dtype = players.compute_dtype or torch.float32
    with quiet_stderr(), torch.profiler.profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        game.step(players, config, batch)
    products = []
    for event in prof.events():
        if event.name in ("aten::mm", "aten::addmm"):
            *bias, a, b = event.input_shapes[:3] if event.name == "aten::addmm" else event.input_shapes[:2]
            operands = [torch.rand(shape, device=device, dtype=dtype) for shape in (*bias, a, b)]
            products.append((torch.addmm, operands) if bias else (torch.mm, operands))

    def step() -> None:
        for product, operands in products:
            product(*operands)

    return timed(step, steps, device)


def products_in_step(players, config: TrainConfig, train: torch.Tensor, steps: int, device: torch.device) -> float:
    """Seconds that the matrix products take inside `steps` of gannet's steps (torch.profiler's
    self time of aten::mm and aten::addmm): where products_only's replay is a floor for the
    products on their own, this is what they cost in place, between the step's other work."""
    per_step = examples_per_step(config)
    for j in range(10):  # warm-up
        game.step(players, config, train[j * per_step : (j + 1) * per_step].to(device))
    with quiet_stderr(), torch.profiler.profile(activities=[ProfilerActivity.CPU]) as prof:
        for j in range(steps):
            game.step(players, config, train[j * per_step : (j + 1) * per_step].to(device))
    return sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in ("aten::mm", "aten::addmm")) / 1e6


def other_work(players, config: TrainConfig, steps: int, device: torch.device) -> dict[str, float]:
    """Seconds per step of work the step must do besides the products, done as gannet does it
    and timed alone on the CPU: both players' optimiser updates (every D update and the G
    update: fused SGD), the dropout masks D draws and applies in its forward passes, the maxout
    layers' max over pieces (forward only), and under bfloat16 the casts of the float32 weights
    for the products and of their gradients back (once per update). With the products, a floor
    under gannet's step: everything else it does (activations, the backward passes of dropout
    and maxout, losses, bookkeeping) only adds to it."""
    dtype = players.compute_dtype or torch.float32
    d_updates = config.k if config.update == "alternating" else 1
    d_passes = 2 * d_updates + (1 if config.update == "alternating" else 0)  # D(x), D(G(z)); G's own D(G(z))
    for p in [*players.generator.parameters(), *players.discriminator.parameters()]:
        p.grad = torch.rand_like(p) * 1e-3

    def optimiser() -> None:
        for _ in range(d_updates):
            players.optimizer_d.step()
        players.optimizer_g.step()

    D = players.discriminator
    data_dim = D.hidden[0].linear.in_features
    inputs = [torch.rand(config.batch_size, data_dim, device=device, dtype=dtype)]
    inputs += [torch.rand(config.batch_size, layer.units, device=device, dtype=dtype) for layer in D.hidden]
    keeps = [config.input_keep] + [config.hidden_keep] * len(D.hidden)
    shapes = [(config.batch_size, layer.units, layer.pieces) for layer in D.hidden]
    pieces = [torch.rand(shape, device=device, dtype=dtype) for shape in shapes]

    def masks() -> None:
        for _ in range(d_passes):
            for x, keep in zip(inputs, keeps):
                networks.dropout(x, keep, True)

    def maxout() -> None:
        for _ in range(d_passes):
            for z in pieces:
                z.max(dim=-1)

    parts = {"optimiser": optimiser, "dropout masks": masks, "maxout (forward)": maxout}
    if players.compute_dtype is not None:  # float32 master weights: cast for the products, gradients cast back
        d_weights, g_weights = list(players.discriminator.parameters()), list(players.generator.parameters())
        weights = d_weights * d_updates + g_weights  # once per update of their player, at the least
        low = [w.to(players.compute_dtype) for w in weights]

        def casts() -> None:
            for w, w_low in zip(weights, low):
                w.to(w_low.dtype)
                w_low.float()

        parts["bfloat16 casts"] = casts
    return {name: timed(work, steps, device) / steps for name, work in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"), help="MNIST's folder [../shared/data]")
    parser.add_argument("--steps", type=int, default=200, help="timed steps of each loop [200]")
    parser.add_argument("--device", default="cpu", help="cpu or cuda [cpu]")
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="fp32", help="gannet's arithmetic; the plain loop stays fp32 [fp32]"
    )
    parser.add_argument(
        "--command", action="store_true", help="also time the whole `gannet train mnist --epochs 1` command"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    mnist = load_mnist(args.data_dir / "mnist")
    chip = cpu_name() if device.type == "cpu" else torch.cuda.get_device_name(device)
    dtype, fallback = compute_dtype(args.precision, device)
    print(
        f"machine: {platform.machine()} ({chip}), "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, device {device}; MNIST preset, batch 100, "
        f"{args.steps} steps each; gannet's step in {'bfloat16' if dtype is not None else 'float32'}"
        + (f" ({fallback})" if fallback else "")
    )
    epoch = {}  # the preset's (simultaneous) epoch of 500 steps: the plain loop's, and its floor
    for update in ("simultaneous", "alternating"):
        config = TrainConfig(update=update, precision=args.precision)
        loops = {"plain": plain_loop, "gannet": gannet_loop, "products": products_only}
        if device.type == "cpu":  # the profiler's CPU times say nothing of a GPU's kernels
            loops["products in step"] = products_in_step
        if graphs_apply(config, device, distributed=False):
            loops["gannet, eager"] = gannet_eager  # the same loop without CUDA graphs
        times = {}
        for name, loop in loops.items():
            torch.manual_seed(0)
            fp32 = name == "plain"  # the plain loop stays float32
            players = make_players(dataclasses.replace(config, precision="fp32") if fp32 else config, mnist, device)
            times[name] = loop(players, config, mnist.train, args.steps, device)
        torch.manual_seed(0)
        parts = None  # on a GPU, parts timed alone pay launches that the step's CUDA graph does not
        if device.type == "cpu":
            parts = other_work(make_players(config, mnist, device), config, args.steps, device)
        rates = {k: args.steps / v for k, v in times.items()}
        eager, inside = rates.get("gannet, eager"), rates.get("products in step")
        print(
            f"{update:>12}: plain {rates['plain']:6.1f} steps/s ({1000 / rates['plain']:5.2f} ms)   "
            f"gannet {rates['gannet']:6.1f} steps/s ({1000 / rates['gannet']:5.2f} ms)   "
            f"ratio {rates['gannet'] / rates['plain']:.2f}×   "
            f"gannet epoch (500 steps) {500 / rates['gannet']:.2f} s   "
            f"matrix products alone {1000 / rates['products']:5.2f} ms/step "
            f"(gannet's step {rates['products'] / rates['gannet']:.2f}× that)"
            + (f" (inside gannet's step {1000 / inside:5.2f})" if inside else "")
            + (f"   gannet without CUDA graphs {eager:6.1f} steps/s ({1000 / eager:5.2f} ms)" if eager else "")
        )
        epoch.setdefault("plain", 500 / rates["plain"])
        epoch.setdefault("gannet", 500 / rates["gannet"])
        if parts is None:
            continue
        floor = 1 / rates["products"] + sum(parts.values())
        print(
            f"{'':>12}  the step's other work alone: "
            + ", ".join(f"{name} {1000 * seconds:.2f} ms" for name, seconds in parts.items())
            + f"; its floor, with the products: {1000 * floor:.2f} ms, {floor * rates['products']:.2f}× the "
            f"products alone (gannet's step is {1 / rates['gannet'] / floor:.2f}× "
            "the floor)"
        )
        epoch.setdefault("floor", 500 * floor)
    if args.command:
        whole, start = whole_command(args.data_dir, args.device, args.precision), start_up()
        end = whole - start - epoch["gannet"]  # the Parzen monitor, the picture, the checkpoint, loading MNIST
        print(
            f"the whole command, one epoch: {whole:.2f} s; the plain loop's 500 steps alone {epoch['plain']:.2f} s "
            f"are {epoch['plain'] / whole:.2f}× that. Of the command: start-up {start:.2f} s (import gannet, the "
            f"optimisers' first use), 500 steps {epoch['gannet']:.2f} s, the rest (MNIST, the epoch's monitor, "
            f"picture and checkpoint) {end:.2f} s"
        )
        if "floor" in epoch:
            least = start + epoch["floor"] + end
            print(
                f"  with its 500 simultaneous steps at their floor ({epoch['floor']:.2f} s) the command would take "
                f"{least:.2f} s: the plain loop's steps {epoch['plain'] / least:.2f}× that, at best"
            )


def start_up() -> float:
    """Wall seconds of a fresh process that imports gannet's command line and makes an optimiser
    (torch.optim imports torch._dynamo then): what every `gannet train` pays before its first step."""
    code = "import gannet.cli, torch; torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def whole_command(data_dir: Path, device: str, precision: str) -> float:
    """Wall seconds of `gannet train mnist --epochs 1` in a fresh process (start-up, 500 steps,
    the Parzen monitor, the sample picture, the checkpoint), into a temporary run folder."""
    with tempfile.TemporaryDirectory() as run_dir:
        command = ["gannet", "train", "mnist", "--epochs", "1", "--data-dir", str(data_dir), "--device", device]
        command += ["--precision", precision, "--run-dir", f"{run_dir}/run", "--no-progress"]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - started


if __name__ == "__main__":
    main()
