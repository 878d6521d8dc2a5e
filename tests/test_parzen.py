import json
import math

import pytest
import torch

from gannet.parzen import (
    MIN_EXPONENT,
    PAPER_SIGMAS,
    ClassScore,
    DistanceBound,
    ParzenResult,
    close_pairs,
    evaluate,
    format_by_class,
    mean_and_se,
    parzen_log_likelihoods,
)


def direct_log_likelihood(x, samples, sigma):
    """The formula, one pair at a time, in Python floats: logmeanexp_i(-‖x-μ_i‖²/2σ²) - d·log(σ√2π)."""
    d = len(x)
    exponents = [-sum((a - b) ** 2 for a, b in zip(x, mu)) / (2 * sigma**2) for mu in samples]
    top = max(exponents)
    log_mean = top + math.log(sum(math.exp(e - top) for e in exponents) / len(samples))
    return log_mean - d * math.log(sigma * math.sqrt(2 * math.pi))


@pytest.fixture(scope="module")
def points():
    g = torch.Generator().manual_seed(0)
    samples = torch.rand(300, 12, generator=g, dtype=torch.float64)
    x = torch.rand(40, 12, generator=g, dtype=torch.float64)
    return samples, x


@pytest.mark.parametrize("prune", [False, True])
@pytest.mark.parametrize("sigma", [0.1, 0.25, 1.0])
def test_matches_the_direct_per_pair_formula(points, sigma, prune):
    samples, x = points
    fast = parzen_log_likelihoods(x, samples, [sigma], dtype=torch.float64, prune=prune)[0]
    direct = torch.tensor(
        [direct_log_likelihood(row.tolist(), samples.tolist(), sigma) for row in x], dtype=torch.float64
    )
    assert torch.allclose(fast, direct, rtol=1e-6, atol=0)


def test_one_sample_on_the_point_is_the_gaussian_normaliser():
    d, sigma = 784, 0.2
    ll = parzen_log_likelihoods(torch.zeros(1, d), torch.zeros(1, d), [sigma])
    assert ll.item() == pytest.approx(-d * math.log(sigma * math.sqrt(2 * math.pi)), rel=1e-12)  # ≈ 540.3


def test_chunks_and_float32_do_not_change_the_answer(points):
    samples, x = points
    whole = parzen_log_likelihoods(x, samples, PAPER_SIGMAS, dtype=torch.float64)
    chunked = parzen_log_likelihoods(x, samples, PAPER_SIGMAS, chunk_size=7, dtype=torch.float64)
    single = parzen_log_likelihoods(x.float(), samples.float(), PAPER_SIGMAS, dtype=torch.float32)
    assert whole.shape == (10, 40)
    assert torch.allclose(whole, chunked, rtol=1e-12)
    assert (whole - single).abs().max() < 1e-3


def test_distance_bounds_are_lower_bounds_and_keep_every_close_pair():
    # points near a 5-dimensional subspace of 60 dimensions, bounded in its top 8 directions
    g = torch.Generator().manual_seed(1)
    basis = torch.randn(5, 60, generator=g, dtype=torch.float64)
    samples = torch.rand(400, 5, generator=g, dtype=torch.float64) @ basis
    samples += 0.05 * torch.randn(400, 60, generator=g, dtype=torch.float64)
    x = torch.rand(50, 5, generator=g, dtype=torch.float64) @ basis + 0.05 * torch.randn(50, 60, generator=g)
    mu, xc = samples - samples.mean(dim=0), x - samples.mean(dim=0)
    exact = torch.cdist(xc, mu).square()
    bound = DistanceBound(mu, dims=8)
    lower, _ = bound(xc)
    assert (lower <= exact * (1 + 1e-12)).all()
    assert (lower >= 0.5 * exact).float().mean() > 0.9  # and tight enough to prune with
    sigma = 0.3
    margin = MIN_EXPONENT / (-0.5 / sigma**2)
    rows, cols = close_pairs(xc, mu, bound, margin)
    needed = exact <= exact.amin(dim=1, keepdim=True) + margin  # terms ≥ e^-80 of the row's largest
    kept = torch.zeros_like(needed)
    kept[rows, cols] = True
    assert (kept | ~needed).all()  # every needed pair kept
    assert needed.sum() <= kept.sum() < 0.5 * kept.numel()  # and most left out
    assert torch.equal(rows, rows.sort().values)  # row-major, as the CSR product expects
    dense = parzen_log_likelihoods(x, samples, [sigma], dtype=torch.float64, prune=False)
    pruned = parzen_log_likelihoods(x, samples, [sigma], dtype=torch.float64, prune=True)
    assert torch.allclose(pruned, dense, rtol=1e-12)


def test_pruning_keeps_mnist_scores_and_falls_back_for_wide_sigmas(mnist, monkeypatch):
    import gannet.parzen as parzen

    samples, x = mnist.train[:10_000], mnist.test[:1_000]
    kept = []  # pairs kept by each pruned chunk (close_pairs: the original, imported above)

    def spy(*args, **kwargs):
        kept.append(close_pairs(*args, **kwargs))
        return kept[-1]

    monkeypatch.setattr(parzen, "close_pairs", spy)
    dense = parzen_log_likelihoods(x, samples, [0.1668, 1.0], prune=False)
    assert not kept
    fast = parzen_log_likelihoods(x, samples, [0.1668])[0]  # default: pruned after a dense first chunk
    assert kept and sum(len(rows) for rows, _ in kept) < 0.01 * len(samples) * len(x)
    # float32 distances (norms ~100) round by ~1e-5, ~1e-4 nats at this sigma: both ways, any BLAS
    assert (fast - dense[0]).abs().max() < 2e-3 and abs(fast.mean() - dense[0].mean()) < 3e-4
    kept.clear()
    wide = parzen_log_likelihoods(x, samples, [0.1668, 1.0])  # at sigma = 1 every pair counts: dense
    assert not kept and torch.equal(wide, dense)


def test_evaluate_picks_the_best_validation_sigma_and_reports_mean_and_se(points):
    samples, x = points
    valid, test = x[:20], x[20:]
    result = evaluate(samples, valid, test, dtype=torch.float64)
    means = parzen_log_likelihoods(valid, samples, PAPER_SIGMAS, dtype=torch.float64).mean(dim=1)
    assert result.sigma == pytest.approx(PAPER_SIGMAS[int(means.argmax())])
    assert list(result.validation.values()) == pytest.approx(means.tolist())
    test_ll = torch.tensor([direct_log_likelihood(r.tolist(), samples.tolist(), result.sigma) for r in test])
    assert result.log_likelihood == pytest.approx(test_ll.mean().item(), rel=1e-6)
    assert result.standard_error == pytest.approx(test_ll.std(unbiased=False).item() / math.sqrt(20), rel=1e-6)
    fixed = evaluate(samples, valid, test, sigma=0.5)
    assert fixed.sigma == 0.5 and fixed.validation == {}


def test_paper_sigmas_are_logspace_minus_one_to_zero():
    assert len(PAPER_SIGMAS) == 10
    assert PAPER_SIGMAS[0] == pytest.approx(0.1) and PAPER_SIGMAS[-1] == pytest.approx(1.0)
    assert PAPER_SIGMAS[1] == pytest.approx(10 ** (-8 / 9))


def test_standard_error_is_population_std_over_root_m():
    assert mean_and_se(torch.tensor([1.0, 3.0])) == pytest.approx((2.0, 1 / math.sqrt(2)))


def test_per_class_scores_are_each_class_images_mean_and_se(points):
    samples, x = points
    labels = torch.tensor([0, 1, 2, 1] * 5)  # the 20 test points of three classes
    result = evaluate(samples, x[:20], x[20:], sigma=0.25, dtype=torch.float64, test_labels=labels)
    direct = torch.tensor([direct_log_likelihood(r.tolist(), samples.tolist(), 0.25) for r in x[20:]])
    assert sorted(result.per_class) == [0, 1, 2]
    for label, score in result.per_class.items():
        mine = direct[labels == label]
        assert score.num_test == len(mine)
        assert score.log_likelihood == pytest.approx(mine.mean().item(), rel=1e-6)
        assert score.standard_error == pytest.approx(mine.std(unbiased=False).item() / math.sqrt(len(mine)), rel=1e-6)
    weighted = sum(s.log_likelihood * s.num_test for s in result.per_class.values()) / 20
    assert weighted == pytest.approx(result.log_likelihood, rel=1e-9)
    assert ParzenResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result  # what the JSON file holds
    assert evaluate(samples, x[:20], x[20:], sigma=0.25).per_class == {}  # no labels, no classes


def test_by_class_lines_put_the_largest_gap_first():
    def result(scores, sigma=0.2):
        per_class = {c: ClassScore(ll, 1.0, 10) for c, ll in scores.items()}
        return ParzenResult(0.0, 0.0, sigma, 100, 30, per_class=per_class)

    model, real = result({0: 100.0, 1: 50.0, 2: 90.0}), result({0: 110.0, 1: 120.0, 2: 95.0})
    lines = format_by_class(model, real).splitlines()
    assert "beside real training images (largest gap first)" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ["1", "0", "2"]  # gaps 70, 10, 5
    assert lines[1].rstrip().endswith("real   120.00   gap   70.00") and "LL =    50.00 ±  1.00" in lines[1]
    alone = format_by_class(model).splitlines()  # nothing to compare with: by label, no gap column
    assert [line.split()[0] for line in alone[1:]] == ["0", "1", "2"] and "gap" not in alone[1]
    with pytest.raises(ValueError, match="one sigma"):  # the normalisers of two sigmas differ by far more
        format_by_class(model, result({0: 1.0, 1: 1.0, 2: 1.0}, sigma=0.1668))


def test_the_ceiling_is_evaluate_of_real_images_cached_per_protocol(points, monkeypatch):
    from gannet import parzen
    from gannet.data import cache_dir

    real, x = points
    valid, test, labels = x[:20], x[20:], torch.arange(20) % 2
    first = parzen.ceiling("mnist", real, valid, test)
    assert first == evaluate(real, valid, test)
    [cached] = (cache_dir() / "parzen-ceiling").iterdir()
    with monkeypatch.context() as patch:
        patch.setattr(parzen, "evaluate", lambda *a, **k: pytest.fail("recomputed a cached ceiling"))
        assert parzen.ceiling("mnist", real, valid, test).to_dict() == first.to_dict()  # (sigma keys rounded)
    # per-class scores asked of an entry cached without them, or an unreadable entry: computed again
    with_classes = parzen.ceiling("mnist", real, valid, test, test_labels=labels)
    assert with_classes == evaluate(real, valid, test, test_labels=labels) and with_classes.per_class
    cached.write_text("{not json")
    assert parzen.ceiling("mnist", real, valid, test) == first  # computed again
    assert json.loads(cached.read_text()) == first.to_dict()
    # another protocol (here a fixed sigma) is another entry
    assert parzen.ceiling("mnist", real, valid, test, sigma=0.5) == evaluate(real, valid, test, sigma=0.5)
    assert len(list(cached.parent.iterdir())) == 2
