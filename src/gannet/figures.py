"""The paper's figures (and the tutorial's cost figure) from runs and from the project's own code.

Each function writes one file (PNG, PDF or SVG by the path's suffix) and returns its path;
`make` draws any of them by name. Figure 1, the 1-D game, is in figure1.py (which this module
imports, not the other way round).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from gannet import images
from gannet.data import data_shape
from gannet.errors import GannetError
from gannet.figure1 import figure1
from gannet.images import check_grid, grid_array, pyplot
from gannet.losses import GENERATOR_LOSSES
from gannet.metrics import read_metrics
from gannet.networks import Generator
from gannet.noise import append_labels, num_classes, sample_codes, sample_noise
from gannet.outputs import check_count, check_seed
from gannet.sampling import checkpoint_dataset, load_generator, sample


def save_figure(fig, path: Path) -> Path:
    return images.save_figure(fig, path, dpi=150, bbox_inches="tight")


# --- the tutorial's costs figure ------------------------------------------------------------


def generator_cost_curves(points: int = 400) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """J(G) of each generator cost against D(G(z)), from losses.py itself: D(G(z)) on (0, 1),
    its logit fed to each cost one value at a time."""
    d = torch.linspace(1e-3, 1 - 1e-3, points, dtype=torch.float64)
    logits = torch.logit(d)
    curves = {name: np.array([fn(v.reshape(1)).item() for v in logits]) for name, fn in GENERATOR_LOSSES.items()}
    return d.numpy(), curves


def costs_figure(path: Path) -> Path:
    d, curves = generator_cost_curves()
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    styles = {"minimax": "-", "non-saturating": "--", "maximum-likelihood": ":"}
    for name, values in curves.items():
        ax.plot(d, values, styles[name], lw=2, label=name)
    ax.set_xlabel("D(G(z))")
    ax.set_ylabel("J(G)")
    ax.set_ylim(-20, 7)
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend()
    ax.set_title("Generator costs (minimax is flat where D rejects the samples)", fontsize=9)
    return save_figure(fig, path)


# --- training curves -------------------------------------------------------------------------


CURVE_AXES = ("step", "epoch", "minutes")  # what `gannet figures curves --x` draws against


CURVE_PANELS = [  # (title, series of metrics.jsonl)
    ("losses", ["loss/d", "loss/g"]),
    ("discriminator output", ["d/real", "d/fake"]),
    ("Parzen LL (validation monitor)", ["parzen/valid", "parzen/valid_average", "parzen/valid_ema"]),
    ("learning rate", ["lr/d", "lr/g"]),
    ("momentum", ["momentum"]),
]
SERIES_STYLES = ("-", "--", ":")  # several runs: a line style per series of a panel


def curves_figure(run_dirs: Path | list[Path], path: Path, x: str = "step") -> Path:
    """Losses, D(x) and D(G(z)), the Parzen monitor (and its mean or moving-average generator's,
    with --average-from or --ema-decay), learning rate and momentum from metrics.jsonl, of one
    run or of several overlaid (a colour per run, named in one legend above the panels; a line
    style per series), against the step, the epoch or the training minutes."""
    named: dict[Path, Path] = {}  # each run once, however it is named (a, ./a, /abs/a): as first given
    for run in [run_dirs] if isinstance(run_dirs, Path) else run_dirs:
        named.setdefault(run.resolve(), run)
    runs = list(named.values())
    histories = [read_metrics(run) for run in runs]
    drawable = {name for _, names in CURVE_PANELS for name in names}
    for run, records in zip(runs, histories):
        if not any(_is_number(r.get(name)) for r in records for name in drawable):
            raise GannetError(f"{run}/metrics.jsonl holds no losses, D outputs, scores or rates to draw.")
    present = {k for records in histories for r in records for k, v in r.items() if _is_number(v)}
    panels = [(title, names) for title, names in CURVE_PANELS if present & set(names)]  # e.g. no Parzen monitor
    axes_of = [curve_axis(records, x, run) for run, records in zip(runs, histories)]
    plt = pyplot()
    several = len(runs) > 1
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(7, 2.1 * len(panels) + (0.3 * math.ceil(len(runs) / 3) if several else 0)),
        sharex=True, squeeze=False, layout="constrained" if several else None,
    )  # fmt: skip
    axes = axes[:, 0]
    colours = run_colours(len(runs))
    for ax, (title, names) in zip(axes, panels):
        for i, (records, where) in enumerate(zip(histories, axes_of)):
            for j, name in enumerate(names):
                points = [(where(r["step"]), r[name]) for r in records if _is_number(r.get(name))]
                if points:
                    xs, values = zip(*points)
                    marker = "." if len(points) < 50 else None
                    if several:
                        ax.plot(xs, values, marker=marker, color=colours[i], linestyle=SERIES_STYLES[j], lw=1.1)
                    else:  # one run: a colour per series
                        ax.plot(xs, values, marker=marker, label=name)
        ax.set_title(title, fontsize=9)
        if several:  # the panel's series by line style; the runs by colour, above
            shown = [name for name in names if name in present]
            if len(shown) > 1:
                styles = [plt.Line2D([], [], color="0.3", linestyle=SERIES_STYLES[names.index(n)]) for n in shown]
                ax.legend(styles, shown, fontsize=7)
        elif ax.lines:
            ax.legend(fontsize=8)
    if several:
        handles = [plt.Line2D([], [], color=colour, lw=2) for colour in colours]
        fig.legend(handles, run_labels(runs), loc="outside upper center", ncol=min(len(runs), 3), fontsize=7)
    axes[-1].set_xlabel({"step": "step", "epoch": "epoch", "minutes": "training minutes"}[x])
    if not several:
        fig.tight_layout()
    return save_figure(fig, path)


def run_colours(count: int) -> list:
    """A distinct colour for each of `count` runs: tab10, tab20, then a sampled colour map."""
    import matplotlib

    if count <= 10:
        return [f"C{i}" for i in range(count)]
    if count <= 20:
        return list(matplotlib.colormaps["tab20"].colors[:count])
    return [matplotlib.colormaps["turbo"](i / (count - 1)) for i in range(count)]


def run_labels(runs: list[Path]) -> list[str]:
    """Each run's legend label: its folder's name, or its path where two share one; written as
    plain text (matplotlib would read $...$ as mathematics and drop a label starting with _)."""
    names = [run.resolve().name for run in runs]
    labels = [name if names.count(name) == 1 else str(run) for name, run in zip(names, runs)]
    return [("\u200b" if label.startswith("_") else "") + label.replace("$", r"\$") for label in labels]


def curve_axis(records: list[dict], x: str, run: Path | str = "this run"):
    """step -> the x coordinate of a run's record: the step itself, or the epoch (fractional) or
    training minutes, read off the records written at each epoch's end (`epoch`, `time/elapsed`)
    and placed linearly in between by step (after the last end, at the last epoch's pace)."""
    if x == "step":
        return lambda step: step
    key, scale = ("epoch", 1.0) if x == "epoch" else ("time/elapsed", 1 / 60)
    ends = [(0, 0.0)] + [(r["step"], r[key] * scale) for r in records if _is_number(r.get("time/elapsed"))]
    if len(ends) < 2:
        raise GannetError(f"--x {x} needs a finished epoch; {run} has none yet (--x step draws it).")
    steps, values = np.array([s for s, _ in ends], dtype=float), np.array([v for _, v in ends])
    pace = (values[-1] - values[-2]) / max(steps[-1] - steps[-2], 1)

    def where(step: int) -> float:
        if step > steps[-1]:
            return float(values[-1] + pace * (step - steps[-1]))
        return float(np.interp(step, steps, values))

    return where


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- Figure 2: samples beside their nearest training examples ------------------------------


def nearest_neighbours(queries: torch.Tensor, data: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Index of each query's nearest row of `data` in Euclidean distance, (Q,): one matrix
    product per chunk of data, ‖q‖² dropped (it does not change the argmin)."""
    queries, best_d, best_i = queries.double(), None, None
    for start in range(0, len(data), chunk):
        block = data[start : start + chunk].double()  # (C, d)
        dist = (block * block).sum(1)[None, :] - 2 * queries @ block.T  # (Q, C)
        d, i = dist.min(dim=1)
        i = i + start
        if best_d is None:
            best_d, best_i = d, i
        else:
            better = d < best_d
            best_d, best_i = torch.where(better, d, best_d), torch.where(better, i, best_i)
    return best_i


def figure2(
    samples: torch.Tensor,
    train: torch.Tensor,
    shape: tuple[int, int, int],
    path: Path,
    columns: int = 6,
    scale: int = 3,
) -> Path:
    """Rows of `columns − 1` samples; the right-most column holds the training example nearest
    to its neighbouring sample, outlined in yellow (the paper's Figure 2)."""
    rows = len(samples) // (columns - 1)
    samples = samples[: rows * (columns - 1)].reshape(rows, columns - 1, -1)
    neighbours = train[nearest_neighbours(samples[:, -1], train)]  # (rows, d)
    cells = torch.cat([samples, neighbours[:, None]], dim=1).reshape(rows * columns, -1)
    picture = Image.fromarray(grid_array(cells, shape, columns)).convert("RGB")
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(picture)
    c, h, w = shape
    pad = 2
    for r in range(rows):
        left, top = pad + (columns - 1) * (w + pad), pad + r * (h + pad)
        box = [(left - 1) * scale, (top - 1) * scale, (left + w + 1) * scale - 1, (top + h + 1) * scale - 1]
        draw.rectangle(box, outline=(255, 220, 0), width=max(1, scale))
    return images.save_picture(picture, path)


# --- Figure 3: walks through z --------------------------------------------------------------


@torch.no_grad()
def interpolation_rows(generator: Generator, config, rows: int, steps: int, seed: int = 0) -> torch.Tensor:
    """G along straight lines in z: row r is G((1 − t)·z_a + t·z_b) for t in linspace(0, 1, steps)
    (a conditional model's row r keeps class r mod classes at both ends)."""
    rng = torch.Generator().manual_seed(seed)
    labels = (torch.arange(2 * rows) // 2) % max(num_classes(config), 1)
    ends = sample_codes(config, 2 * rows, generator=rng, labels=labels).reshape(rows, 2, -1)
    t = torch.linspace(0, 1, steps)[None, :, None]  # (1, steps, 1)
    z = (1 - t) * ends[:, :1] + t * ends[:, 1:]  # (rows, steps, latent)
    return _generate(generator, z.reshape(rows * steps, -1))  # (rows·steps, d)


def figure3(
    generator: Generator,
    config,
    shape: tuple[int, int, int],
    path: Path,
    rows: int = 8,
    steps: int = 10,
    seed: int = 0,
    scale: int = 3,
) -> Path:
    cells = interpolation_rows(generator, config, rows, steps, seed)
    picture = Image.fromarray(grid_array(cells, shape, steps))
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    return images.save_picture(picture, path)


# --- a conditional model: one row per class ---------------------------------------------------


@torch.no_grad()
def class_rows(generator: Generator, config, columns: int, seed: int = 0) -> torch.Tensor:
    """A conditional G's samples, row c of class c; column j shares one z over all rows, so a
    column shows one 'style' drawn as every class: (classes·columns, d)."""
    classes = num_classes(config)
    z = sample_noise(config.noise, columns, config.latent_dim, generator=torch.Generator().manual_seed(seed))
    labels = torch.arange(classes).repeat_interleave(columns)  # (classes·columns,)
    codes = append_labels(z.repeat(classes, 1), labels, classes)
    return _generate(generator, codes)


def _generate(generator: Generator, codes: torch.Tensor, batch: int = 10_000) -> torch.Tensor:
    """G(codes) on the CPU, in batches (a large figure's hidden layers would not fit at once)."""
    device = next(generator.parameters()).device
    return torch.cat([generator(chunk.to(device)).cpu() for chunk in codes.split(batch)])


def classes_figure(
    generator: Generator, config, shape: tuple[int, int, int], path: Path, columns: int = 10, seed: int = 0
) -> Path:
    picture = Image.fromarray(grid_array(class_rows(generator, config, columns, seed), shape, columns))
    picture = picture.resize((picture.width * 3, picture.height * 3), Image.NEAREST)
    return images.save_picture(picture, path)


# --- the `gannet figures` command -----------------------------------------------------------


def make(
    name: str,
    output: Path,
    run: str | os.PathLike | list[str | os.PathLike] | None = None,
    *,
    seed: int = 0,
    rows: int = 8,
    columns: int | None = None,
    steps: int = 10,
    data_dir: str | os.PathLike | None = None,
    gif: Path | None = None,
    progress: bool | None = None,
    x: str = "step",
) -> list[Path]:
    """Write figure `name` (fig1, fig2, fig3, classes, costs, curves) to `output`; return the
    files written. `run`: the run directory or checkpoint it draws from (fig1: a toy1d run to
    start from, else one is trained; curves: one run directory or a list, drawn against `x`,
    one of CURVE_AXES); `columns`: fig2's (6, the last for neighbours) or
    classes' (10) by default; `data_dir`: fig2's training set, else where the run found it;
    `gif`: fig1's animation; `progress`: fig1's bar (None: on a terminal)."""
    check_seed(seed)
    for flag, value, low in (("--rows", rows, 1), ("--columns", columns, 2), ("--steps", steps, 2)):
        if value is not None:
            check_count(flag, value, low)
    if name == "costs":
        return [costs_figure(output)]
    if name == "curves":
        runs = [run] if isinstance(run, str | os.PathLike) else list(run or [])
        if not runs:
            raise GannetError("curves draws a run's metrics.jsonl; give its run directory.")
        for one in runs:
            if not (Path(one) / "metrics.jsonl").is_file():
                from gannet.pretrained import refuse_history

                refuse_history(one, "training history (metrics.jsonl) to draw")
                if not Path(one).exists():
                    raise GannetError(f"{one} does not exist; curves draws a run directory.")
                if not Path(one).is_dir():
                    raise GannetError(f"{one} is a file; curves draws a run directory (the folder of metrics.jsonl).")
                raise GannetError(f"{one} holds no metrics.jsonl: is it a gannet run directory?")
        if x not in CURVE_AXES:
            raise GannetError(f"--x {x}: curves are drawn against {', '.join(CURVE_AXES)}.")
        return [curves_figure([Path(one) for one in runs], output, x)]
    if name == "fig1":
        path, _ = figure1(output, run, gif, seed, progress=progress)
        return [path, *([gif] if gif else [])]
    if name not in ("fig2", "fig3", "classes"):
        raise GannetError(f"Unknown figure '{name}'; known: fig1, fig2, fig3, classes, costs, curves.")
    if run is None:
        raise GannetError(f"{name} draws a trained generator; give its run directory or checkpoint.")
    generator, config, path = load_generator(run)
    shape = data_shape(config)
    if len(shape) != 3:
        raise GannetError(f"{name} draws images; {path} was trained on the 1-D {config.dataset} (try fig1).")
    if name == "classes" and not num_classes(config):
        raise GannetError(f"classes draws one row per class; {path} is not a conditional model (--conditional).")
    if name == "fig2":
        columns = columns or 6
        check_grid(f"--rows {rows:,} and --columns {columns:,}", rows * columns, shape, columns, scale=3)
        samples = sample(generator, config, rows * (columns - 1), seed)
        train = checkpoint_dataset(config, data_dir).train
        return [figure2(samples, train, shape, output, columns)]
    if name == "classes":
        columns = columns or 10
        check_grid(f"--columns {columns:,}", num_classes(config) * columns, shape, columns, scale=3)
        return [classes_figure(generator, config, shape, output, columns, seed)]
    check_grid(f"--rows {rows:,} and --steps {steps:,}", rows * steps, shape, steps, scale=3)
    return [figure3(generator, config, shape, output, rows, steps, seed)]
