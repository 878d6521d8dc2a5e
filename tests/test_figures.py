import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gannet import figure1 as figure1_module
from gannet.errors import GannetError
from gannet.figure1 import Schedule, figure1, play, toy_players
from gannet.figures import curve_axis, generator_cost_curves, interpolation_rows, make, nearest_neighbours, run_labels
from gannet.sampling import load_generator

from .conftest import gannet


def test_nearest_neighbours_match_a_brute_force_loop():
    g = torch.Generator().manual_seed(0)
    data, queries = torch.rand(500, 20, generator=g), torch.rand(30, 20, generator=g)
    fast = nearest_neighbours(queries, data, chunk=64)  # several chunks
    loop = [min(range(len(data)), key=lambda j: float(((q - data[j]) ** 2).sum())) for q in queries]
    assert fast.tolist() == loop


def test_cost_curves_come_from_the_loss_functions():
    d, curves = generator_cost_curves(points=5)  # D(G(z)) = 0.001, 0.2505, 0.5, 0.7495, 0.999
    assert d[2] == pytest.approx(0.5)
    assert curves["minimax"][2] == pytest.approx(math.log(0.5))  # log(1 - D)
    assert curves["non-saturating"][2] == pytest.approx(-math.log(0.5))  # -log D
    assert curves["maximum-likelihood"][2] == pytest.approx(-1.0)  # -D / (1 - D)
    assert curves["minimax"][0] == pytest.approx(math.log(0.999))  # flat where D rejects samples
    assert curves["non-saturating"][0] == pytest.approx(-math.log(0.001))


def test_figure2_puts_the_nearest_training_example_in_the_outlined_last_column(mnist_run, tiny_dir, tmp_path):
    code, _ = gannet(
        "figures", "fig2", mnist_run, "-o", tmp_path / "f2.png", "--rows", 3, "--columns", 4, "--data-dir", tiny_dir
    )
    assert code == 0
    picture = np.asarray(Image.open(tmp_path / "f2.png").convert("RGB"))
    cell = 3 * (28 + 2)  # scale 3, 2-px borders
    assert picture.shape == (3 * (3 * 30 + 2), 3 * (4 * 30 + 2), 3)
    yellow = (picture[..., 0] > 200) & (picture[..., 1] > 180) & (picture[..., 2] < 60)
    assert yellow[:, 3 * cell :].sum() > 1000 and yellow[:, : 3 * cell - 6].sum() == 0


def test_figure3_rows_walk_between_two_points_in_z(mnist_run):
    generator, config, _ = load_generator(mnist_run)
    rows = interpolation_rows(generator, config, rows=2, steps=5, seed=3).reshape(2, 5, -1)
    from gannet.noise import sample_noise

    ends = sample_noise(config.noise, 4, 100, generator=torch.Generator().manual_seed(3)).reshape(2, 2, -1)
    with torch.no_grad():
        assert torch.allclose(rows[:, 0], generator(ends[:, 0]), atol=1e-6)
        assert torch.allclose(rows[:, -1], generator(ends[:, 1]), atol=1e-6)


def test_image_figures_write_png_pdf_and_svg(mnist_run, tmp_path):
    assert gannet("figures", "fig3", mnist_run, "-o", tmp_path / "f3", "--format", "pdf")[0] == 0
    assert gannet("figures", "fig3", mnist_run, "-o", tmp_path / "f3.png", "--format", "svg")[0] == 2  # which one?
    assert not (tmp_path / "f3.svg").exists() and not (tmp_path / "f3.png").exists()
    assert (tmp_path / "f3.pdf").read_bytes()[:4] == b"%PDF"
    assert gannet("figures", "costs", "-o", tmp_path / "c.svg")[0] == 0
    assert b"<svg" in (tmp_path / "c.svg").read_bytes()[:500]
    assert gannet("figures", "curves", mnist_run, "-o", tmp_path / "cu.png")[0] == 0
    assert Image.open(tmp_path / "cu.png").size[1] > 1000  # five stacked panels


def test_figure_errors_are_one_sentence(mnist_run, tmp_path, capsys):
    code, out = gannet("figures", "costs", "-o", tmp_path / "c.jpg", capsys=capsys)
    assert code == 2 and "must end in .png, .pdf or .svg" in out.err
    code, out = gannet("figures", "fig1", mnist_run, "-o", tmp_path / "f.png", capsys=capsys)
    assert code == 2 and "needs a toy1d run" in out.err
    code, out = gannet("figures", "curves", tmp_path, capsys=capsys)
    assert code == 2 and "holds no metrics.jsonl" in out.err


def test_figure1_ends_at_the_equilibrium(tmp_path):
    path, shots = figure1(tmp_path / "f1.png", gif=tmp_path / "f1.gif", schedule=Schedule(frame_every=500))
    assert Image.open(path).size[0] > 1500
    gif = Image.open(tmp_path / "f1.gif")
    assert gif.n_frames >= 8
    end = shots["d"]
    on_data = (end.grid > 1.0) & (end.grid < 3.0)  # the data's mean ± 2 standard deviations
    assert np.abs(end.d[on_data] - 0.5).max() < 0.08  # D(x) ≈ 1/2 where the data are
    # p_g near p_data (G still drifts around the data's mean of 2 by ~0.2-0.3 at this point of the game,
    # and where depends on the CPU's rounding: 1.83 on CI's, 2.28 on an H100 machine's 16-core host)
    assert end.x.mean() == pytest.approx(2.0, abs=0.35) and end.x.std() == pytest.approx(0.5, abs=0.12)
    # panel (b): D was trained towards D*, so it departs from 1/2 where p_g and p_data differ
    assert np.abs(shots["b"].d[on_data] - 0.5).max() > 0.1


def test_figure1_from_a_toy1d_run_directory(tmp_path):
    run_dir = tmp_path / "toy"
    assert gannet("train", "toy1d", "--epochs", 3, "--run-dir", run_dir, "--no-progress")[0] == 0
    small = Schedule(d_steps=300, g_steps=5, settle=300)
    path, shots = figure1(tmp_path / "f1.pdf", run_dir=run_dir, schedule=small)
    assert path.read_bytes()[:4] == b"%PDF"
    # panel (a) is the run's own generator: its samples match `gannet sample` of that run
    generator, config, _ = load_generator(run_dir)
    with torch.no_grad():
        from gannet.noise import sample_noise

        z = sample_noise(config.noise, 4000, 1, generator=torch.Generator().manual_seed(0)).sort(dim=0).values
        assert np.allclose(shots["a"].x, generator(z).numpy()[:, 0], atol=1e-6)


def test_make_takes_plain_arguments(mnist_run, tmp_path):
    [path] = make("fig3", tmp_path / "f3.png", mnist_run, rows=2, steps=3, seed=1)
    assert Image.open(path).size == (3 * (3 * 30 + 2), 3 * (2 * 30 + 2))  # 2 rows of 3, scale 3


def test_figure1_shows_its_progress_when_asked(capsys):
    from gannet.data import toy1d

    tiny = Schedule(warmup=5, d_steps=5, g_steps=2, settle=5)
    players, config = toy_players(None, seed=0)
    play(players, config, toy1d(), tiny, progress=True)
    err = capsys.readouterr().err
    assert "figure 1" in err and "17/17" in err
    play(players, config, toy1d(), tiny, progress=False)
    assert capsys.readouterr().err == ""


def test_figure1_does_not_import_figures():
    """One way: figures.py draws Figure 1 through figure1.py, which needs nothing of figures.py."""
    tree = ast.parse(Path(figure1_module.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert "gannet.figures" not in imported and not ("gannet" in imported and "figures" in names)


RECORDS = [  # two epochs of 500 steps: 60 s and then 90 s more
    {"step": 250, "loss/d": 0.5, "epoch": 1},
    {"step": 500, "epoch": 1, "time/elapsed": 60.0, "parzen/valid": 10.0},
    {"step": 750, "loss/d": 0.4, "epoch": 2},
    {"step": 1000, "epoch": 2, "time/elapsed": 150.0, "parzen/valid": 20.0},
    {"step": 1250, "loss/d": 0.3, "epoch": 3},
]


def test_curves_place_records_by_epoch_and_training_minutes():
    assert curve_axis(RECORDS, "step")(750) == 750
    epoch, minutes = curve_axis(RECORDS, "epoch"), curve_axis(RECORDS, "minutes")
    assert [epoch(s) for s in (250, 500, 750, 1000)] == [0.5, 1.0, 1.5, 2.0]
    assert minutes(250) == pytest.approx(0.5)  # half of the first minute
    assert minutes(750) == pytest.approx((60 + 150) / 2 / 60)
    assert minutes(1250) == pytest.approx((150 + 45) / 60)  # past the last end: the last epoch's 90 s / 500 steps
    with pytest.raises(GannetError, match="finished epoch"):
        curve_axis(RECORDS[:1], "minutes")


def test_curves_overlay_runs_one_colour_each(tmp_path, monkeypatch):
    runs = []
    for name, shift in (("fp32", 0.0), ("bf16", 1.0), ("_under$core$", 2.0)):
        run = tmp_path / name
        run.mkdir()
        records = [{**r, "parzen/valid": r["parzen/valid"] + shift} if "parzen/valid" in r else r for r in RECORDS]
        (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
        runs.append(run)
    drawn = {}
    monkeypatch.setattr("gannet.figures.save_figure", lambda fig, path: drawn.setdefault("fig", fig) and path)
    make("curves", tmp_path / "c.png", [*runs, tmp_path / "bf16"], x="epoch")  # bf16 named twice: drawn once
    fig = drawn["fig"]
    (legend,) = fig.legends  # the runs, by colour, above the panels
    assert [t.get_text() for t in legend.get_texts()] == ["fp32", "bf16", "\u200b_under\\$core\\$"]
    colours = [h.get_color() for h in legend.legend_handles]
    monitor = next(ax for ax in fig.axes if ax.get_title().startswith("Parzen"))
    assert [line.get_color() for line in monitor.lines] == colours
    assert [list(line.get_xdata()) for line in monitor.lines] == [[1.0, 2.0]] * 3
    assert [list(line.get_ydata()) for line in monitor.lines] == [[10.0, 20.0], [11.0, 21.0], [12.0, 22.0]]
    losses = next(ax for ax in fig.axes if ax.get_title() == "losses")
    assert [line.get_color() for line in losses.lines] == colours  # loss/d only: no loss/g in RECORDS
    assert run_labels([tmp_path / "a" / "run", tmp_path / "b" / "run"]) == [
        str(tmp_path / "a" / "run"),
        str(tmp_path / "b" / "run"),
    ]
