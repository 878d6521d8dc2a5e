"""The paper's evaluation: a Gaussian Parzen window fitted to generator samples (Table 1).

    log p(x) = logmeanexp_i( −‖x − μ_i‖² / (2σ²) ) − d·log(σ·√(2π))

with one isotropic Gaussian of width σ on each sample μ_i. σ is chosen on validation data from
logspace(−1, 0, 10); the test log-likelihood is reported as mean ± standard error (std/√M).

The 2014 script broadcast x − μ into a (batch, N, d) array. Here the squared distances come
from one matrix product, ‖x‖² + ‖μ‖² − 2·x·μᵀ, computed in chunks of x (memory bounded
whatever N), once for all σ; the data are centred on the samples' mean first so that the
expansion loses no precision to large norms.

On a CPU most of those products are wasted: at MNIST's σ ≈ 0.17 a sample further than 4.5 (in
squared distance) beyond x's nearest one adds less than e⁻⁸⁰ of the nearest one's term, and about
6 of 10,000 samples are that close. So distances are first bounded from below, for all pairs, in
the samples' top principal directions (a product 1/12 the size), and computed exactly only for
the pairs whose bound comes within that margin of the nearest sample (~60 of 10,000): the same
sums, less terms below e⁻⁸⁰ each (benchmarks/parzen.py measures the gain).

The estimator's ceiling, real training images scored as if a model had drawn them, is the same
for every model under one protocol: `ceiling` keeps it in the per-user cache.
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from tqdm import tqdm

from gannet.data.store import cache_dir
from gannet.errors import GannetError
from gannet.outputs import write_text

PAPER_SIGMAS = tuple(float(s) for s in torch.logspace(-1, 0, 10, dtype=torch.float64))

# Table 1 of the paper, MNIST: mean test log-likelihood ± standard error (nats).
TABLE1_MNIST = {
    "DBN": (138, 2),
    "Stacked CAE": (121, 1.6),
    "Deep GSN": (214, 1.1),
    "Adversarial nets": (225, 2),
}
TABLE1_TFD = {
    "DBN": (1909, 66),
    "Stacked CAE": (2110, 50),
    "Deep GSN": (1890, 29),
    "Adversarial nets": (2057, 26),
}
TABLE1 = {"mnist": TABLE1_MNIST, "tfd": TABLE1_TFD}


# Widths a Parzen window may have: beyond them 1/σ² under- or overflows a float, and no width
# this far from the data's scale (pixels in [0, 1]) is a density estimate anyone wants.
SIGMA_RANGE = (1e-6, 1e6)


def check_sigmas(sigmas: Sequence[float], flag: str = "--sigmas") -> None:
    """Refuse an empty grid of widths, or one outside SIGMA_RANGE (NaN and infinities included)."""
    low, high = SIGMA_RANGE
    if not len(sigmas):
        raise GannetError(f"{flag} names no width; give positive numbers such as 0.1,0.2.")
    bad = [s for s in sigmas if not low <= s <= high]  # False for NaN
    if bad:
        raise GannetError(f"Parzen widths ({flag}) must be positive, from {low:g} to {high:g}, not {bad[0]:g}.")


@dataclass
class ClassScore:
    """The mean test LL of one class's test images, its standard error and their number."""

    log_likelihood: float
    standard_error: float
    num_test: int


@dataclass
class ParzenResult:
    log_likelihood: float  # mean over the test points
    standard_error: float  # std / √M
    sigma: float
    num_samples: int
    num_test: int
    validation: dict[float, float] = field(default_factory=dict)  # σ → mean validation LL
    per_class: dict[int, ClassScore] = field(default_factory=dict)  # test label → its images' score

    def to_dict(self) -> dict:
        d = asdict(self)
        d["validation"] = {f"{s:.6g}": v for s, v in self.validation.items()}
        d["per_class"] = {str(c): asdict(score) for c, score in self.per_class.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ParzenResult:
        validation = {float(s): v for s, v in d.get("validation", {}).items()}
        per_class = {int(c): ClassScore(**v) for c, v in d.get("per_class", {}).items()}
        return cls(**{**d, "validation": validation, "per_class": per_class})

    def __str__(self) -> str:
        return f"LL = {self.log_likelihood:.2f} ± {self.standard_error:.2f} (sigma = {self.sigma:.4g})"


def _chunk_size(num_samples: int, budget_bytes: int = 256 << 20) -> int:
    """Rows of x per chunk so that the (rows, N) blocks (two, float64 at most) stay within `budget_bytes`."""
    return max(1, budget_bytes // (16 * max(num_samples, 1)))


# Terms below e^-80 of a row's largest are left out (or clamped to e^-80 in the dense path): below
# it exp() leaves the normal floats for the far slower denormals, and 10⁴ such terms move a sum
# ≥ 1 by < 1e-30.
MIN_EXPONENT = -80.0
BOUND_DIMS = 64  # principal directions of the samples in which distances are bounded from below
MAX_KEPT = 0.01  # share of pairs above which exact distances for all pairs are cheaper


class DistanceBound:
    """Lower bounds on the squared distances ‖x − μ_j‖² from x to all centred samples μ_j, for
    (k + 1)/d of the cost of the distances themselves.

    With V the samples' top-k principal directions (orthonormal), each point z splits into
    a = Vᵀz and a residual of norm r = √(‖z‖² − ‖a‖²) orthogonal to V, and
    ‖x − μ‖² = ‖a_x − a_μ‖² + ‖x⊥ − μ⊥‖² ≥ ‖a_x − a_μ‖² + (r_x − r_μ)²: the squared distance
    between the (k + 1)-vectors (a, r), one small matrix product for all pairs.
    """

    def __init__(self, mu: torch.Tensor, dims: int = BOUND_DIMS):
        sub = mu[:: max(1, len(mu) // 2000)]  # 2,000 samples fix the directions well enough
        directions = torch.linalg.eigh(sub.T @ sub).eigenvectors  # ascending eigenvalues
        self.basis = directions[:, -min(dims, mu.shape[1]) :].contiguous()
        self.mu = self.embed(mu)
        self.mu_sq = (self.mu * self.mu).sum(dim=1)
        self.mu_sq_max = self.mu_sq.max()

    def embed(self, z: torch.Tensor) -> torch.Tensor:
        a = z @ self.basis
        residual = ((z * z).sum(dim=1) - (a * a).sum(dim=1)).clamp_(min=0).sqrt_()
        return torch.cat([a, residual[:, None]], dim=1)

    def __call__(self, xc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N) lower bounds for the centred rows `xc`, and per row an allowance (a thousandth
        of the norms involved) that exceeds the bounds' rounding error."""
        ax = self.embed(xc)
        ax_sq = (ax * ax).sum(dim=1)
        bounds = torch.addmm(self.mu_sq, ax, self.mu.T, alpha=-2).add_(ax_sq[:, None])
        return bounds, 1e-3 * (ax_sq + self.mu_sq_max)


def close_pairs(
    xc: torch.Tensor, mu: torch.Tensor, bound: DistanceBound, margin: float, max_kept: float | None = None
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(rows, cols) of every pair whose squared distance can be within `margin` of its row's
    nearest sample (a superset, by the bounds; row-major order, each row keeping at least its
    nearest sample), or None where that is more than a share `max_kept` of all pairs."""
    bounds, allowance = bound(xc)
    guess = bounds.min(dim=1).indices
    upper = (xc - mu[guess]).square_().sum(dim=1)  # a real distance: ≥ the nearest one's
    keep = bounds <= (upper + margin + allowance)[:, None]
    rows, cols = keep.nonzero(as_tuple=True)
    return None if max_kept is not None and len(rows) > max_kept * keep.numel() else (rows, cols)


def sparse_squared_distances(
    xc: torch.Tensor, x_sq: torch.Tensor, mu: torch.Tensor, mu_sq: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """‖xc[rows] − mu[cols]‖² by the same expansion as the dense path, the products only for
    those pairs (a sampled matrix product over a CSR pattern; rows ascending)."""
    counts = torch.bincount(rows, minlength=len(xc))
    crow = torch.cat([counts.new_zeros(1), counts.cumsum(dim=0)])
    with warnings.catch_warnings():  # "sparse CSR support is in beta": sampled_addmm is what we need of it
        warnings.simplefilter("ignore", UserWarning)
        pattern = torch.sparse_csr_tensor(crow, cols, xc.new_zeros(len(cols)), (len(xc), len(mu)))
        dots = torch.sparse.sampled_addmm(pattern, xc, mu.T, beta=0).values()
    return (x_sq[rows] + mu_sq[cols]).sub_(dots, alpha=2).clamp_(min=0)


def parzen_log_likelihoods(
    x: torch.Tensor,
    samples: torch.Tensor,
    sigmas: Sequence[float],
    chunk_size: int | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool | None = False,
    prune: bool | None = None,
) -> torch.Tensor:
    """log p(x) under the Parzen window of `samples`, for every σ: shape (len(sigmas), M).

    x: (M, d) and samples: (N, d) on the same device; the result is float64 on that device.
    float32 (the default) moves MNIST's mean test LL by ~4e-5 nats against float64
    (benchmarks/parzen.py measures it); pass dtype=torch.float64 for the reference value.
    `prune` leaves out the pairs whose terms are below e⁻⁸⁰ of their row's largest without
    computing their distances (module docstring). True: always; False: never; None (default):
    on a CPU for d > 2·BOUND_DIMS, where the first chunk, computed densely, finds at most
    MAX_KEPT/4 of its pairs that close (the bounds keep a few times more), and until a chunk's
    bounds would keep more than MAX_KEPT (then densely, as for wide σ).
    """
    n, d = samples.shape
    center = samples.to(dtype).mean(dim=0)
    mu = samples.to(dtype) - center  # (N, d)
    mu_sq = (mu * mu).sum(dim=1)  # (N,)
    norms = [math.log(n) + d * math.log(s * math.sqrt(2 * math.pi)) for s in sigmas]
    scales = [-0.5 / s**2 for s in sigmas]
    margin = MIN_EXPONENT / max(scales)  # exponent −80 at the widest σ, as a squared distance
    probe = prune is None and x.device.type == "cpu" and d > 2 * BOUND_DIMS and n > 2 * BOUND_DIMS
    bound = DistanceBound(mu) if prune else None
    # pruned: (rows, N) float32 bounds within a few MB (cache-resident); dense: 256 MB of blocks
    sparse_rows = chunk_size or max(1, (8 << 20) // (4 * n))
    out, start = [], 0
    with tqdm(total=len(x), desc="parzen", unit="row", disable=None if progress is None else not progress) as bar:
        while start < len(x):
            rows = sparse_rows if bound is not None or probe else chunk_size or _chunk_size(n)
            xc = x[start : start + rows].to(dtype) - center  # (B, d)
            x_sq = (xc * xc).sum(dim=1)
            pairs = None
            if bound is not None:
                pairs = close_pairs(xc, mu, bound, margin, max_kept=None if prune else MAX_KEPT)
                bound = bound if pairs is not None else None  # too many close pairs: dense from here on
            if pairs is not None:
                dist = sparse_squared_distances(xc, x_sq, mu, mu_sq, *pairs)
                out.append(_sparse_log_sum_exps(len(xc), pairs[0], dist, scales))
            else:
                scores, close = _dense_log_sum_exps(xc, x_sq, mu, mu_sq, scales, margin if probe else None)
                out.append(scores)
                if probe and close <= MAX_KEPT / 4:
                    bound = DistanceBound(mu)
                probe = False
            start += len(xc)
            bar.update(len(xc))
    return torch.cat(out, dim=1).sub_(torch.tensor(norms, dtype=torch.float64, device=x.device)[:, None])


def _dense_log_sum_exps(
    xc: torch.Tensor,
    x_sq: torch.Tensor,
    mu: torch.Tensor,
    mu_sq: torch.Tensor,
    scales: Sequence[float],
    margin: float | None = None,
) -> tuple[torch.Tensor, float | None]:
    """(S, B) logsumexp_i(c·‖x − μ_i‖²) for each scale c = −1/2σ², from all pairs; and, given a
    `margin`, the share of pairs within it of their row's nearest sample."""
    dist = torch.addmm(mu_sq, xc, mu.T, alpha=-2).add_(x_sq[:, None])  # (B, N)
    nearest = dist.amin(dim=1, keepdim=True).clamp_(min=0)  # (B, 1): the largest kernel's distance
    dist.sub_(nearest).clamp_(min=0)  # distances beyond the nearest sample, ≥ 0
    close = None if margin is None else (dist <= margin).sum().item() / dist.numel()
    buffer = torch.empty_like(dist)
    per_sigma = []
    for c in scales:
        # logsumexp_i(c·dist_i) = c·nearest + log Σ_i exp(c·(dist_i − nearest)), each term ≤ 1.
        total = torch.mul(dist, c, out=buffer).clamp_(min=MIN_EXPONENT).exp_().sum(dim=1).double()  # (B,)
        per_sigma.append(c * nearest[:, 0].double() + total.log())
    return torch.stack(per_sigma), close


def _sparse_log_sum_exps(
    num_rows: int, rows: torch.Tensor, dist: torch.Tensor, scales: Sequence[float]
) -> torch.Tensor:
    """The same from the kept pairs only: (rows, dist) with every row present."""
    dist = dist.double()
    nearest = dist.new_full((num_rows,), math.inf).scatter_reduce_(0, rows, dist, "amin")
    beyond = dist - nearest[rows]
    per_sigma = []
    for c in scales:
        total = torch.zeros_like(nearest).index_add_(0, rows, beyond.mul(c).exp_())
        per_sigma.append(c * nearest + total.log())
    return torch.stack(per_sigma)


def mean_and_se(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error (population std / √M, as the 2014 script's numpy std)."""
    values = values.double()
    return values.mean().item(), (values.std(unbiased=False) / math.sqrt(len(values))).item()


def evaluate(
    samples: torch.Tensor,
    valid: torch.Tensor,
    test: torch.Tensor,
    sigmas: Sequence[float] = PAPER_SIGMAS,
    sigma: float | None = None,
    chunk_size: int | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool | None = False,
    test_labels: torch.Tensor | None = None,
    prune: bool | None = None,
) -> ParzenResult:
    """The paper's protocol: pick σ by mean validation LL (unless `sigma` is given), then
    report the mean test LL and its standard error; with `test_labels`, also per class (where
    the average hides that some digits are modelled far worse than others). `prune`: as in
    parzen_log_likelihoods."""
    check_sigmas(sigmas if sigma is None else [sigma], "--sigmas" if sigma is None else "--sigma")
    if chunk_size is not None and chunk_size < 1:
        raise GannetError(f"--batch-size must be at least 1, not {chunk_size:,}.")
    if not (len(samples) and len(valid) and len(test)):
        raise GannetError("A Parzen window needs at least one sample, one validation and one test point.")
    validation: dict[float, float] = {}
    if sigma is None:
        lls = parzen_log_likelihoods(valid, samples, sigmas, chunk_size, dtype, progress, prune).mean(dim=1)
        validation = dict(zip(map(float, sigmas), lls.tolist()))
        sigma = max(validation, key=validation.get)
    test_ll = parzen_log_likelihoods(test, samples, [sigma], chunk_size, dtype, progress, prune)[0]
    ll, se = mean_and_se(test_ll)
    if not math.isfinite(ll):  # samples or points that are NaN or infinite: no score, rather than a wrong one
        raise GannetError(f"The Parzen log-likelihood came out {ll} (sigma = {sigma:.4g}); are the samples finite?")
    per_class = {}
    if test_labels is not None:
        test_labels = test_labels.to(test_ll.device)
        for label in test_labels.unique().tolist():
            values = test_ll[test_labels == label]
            per_class[int(label)] = ClassScore(*mean_and_se(values), len(values))
    return ParzenResult(ll, se, float(sigma), len(samples), len(test), validation, per_class)


def ceiling(
    dataset: str,
    real: torch.Tensor,
    valid: torch.Tensor,
    test: torch.Tensor,
    sigmas: Sequence[float] = PAPER_SIGMAS,
    sigma: float | None = None,
    chunk_size: int | None = None,
    test_labels: torch.Tensor | None = None,
    progress: bool | None = False,
) -> ParzenResult:
    """`evaluate` with `real` images of `dataset` as the samples: what the estimator gives data
    itself. It depends on the protocol alone (MNIST's content is fixed by its checksums), so it
    is cached per data set, sizes and widths under the per-user cache; an entry that cannot be
    read is recomputed, one that cannot be written costs time next run, not this result."""
    grid = ",".join(f"{s:.6g}" for s in sigmas)
    key = f"{dataset}-{len(real)}-{len(valid)}-{len(test)}-{sigma}-{grid}"
    cache = cache_dir() / "parzen-ceiling" / f"{key}.json"
    try:
        cached = ParzenResult.from_dict(json.loads(cache.read_text()))
        if test_labels is None or cached.per_class:  # else cached by a gannet that did not score classes
            return cached
    except (OSError, ValueError, TypeError, KeyError):  # absent or unreadable: recompute
        pass
    result = evaluate(
        real.to(valid.device), valid, test, sigmas, sigma, chunk_size, progress=progress, test_labels=test_labels
    )
    with contextlib.suppress(GannetError):
        write_text(cache, json.dumps(result.to_dict()))
    return result


def format_by_class(result: ParzenResult, real: ParzenResult | None = None) -> str:
    """One line per test class: its images' mean LL ± SE and, given `real` (real training
    images scored at the same σ, per class), theirs and the gap, largest gap first. At the same
    σ only: the normaliser d·log(σ√2π) differs by ~200 nats between neighbouring grid values,
    which would swamp the comparison."""
    if real is not None and real.sigma != result.sigma:
        raise ValueError(f"compare classes at one sigma, not {result.sigma:.4g} and {real.sigma:.4g}")
    theirs = real.per_class if real is not None else {}
    rows = sorted(result.per_class.items())
    if theirs:
        rows.sort(key=lambda item: item[1].log_likelihood - theirs[item[0]].log_likelihood)
    beside = ", beside real training images (largest gap first)" if theirs else ""
    lines = [f"  by test class (sigma = {result.sigma:.4g}){beside}:"]
    for label, score in rows:
        ll, se = score.log_likelihood, score.standard_error
        line = f"    {label:>5}  {score.num_test:>6,} images  LL = {ll:8.2f} ± {se:5.2f}"
        if label in theirs:
            real_ll = theirs[label].log_likelihood
            line += f"   real {real_ll:8.2f}   gap {real_ll - ll:7.2f}"
        lines.append(line)
    return "\n".join(lines)


MONITOR_VALID = 1_000  # the *last* 1,000 validation images: the final protocol picks σ on the first


@torch.no_grad()
def monitor_parzen(
    generator: torch.nn.Module, config, data, device: torch.device, name: str = "parzen/valid"
) -> dict[str, float]:
    """The 2014 code's training monitor: Parzen LL of validation images under samples from
    fixed noise, at the best σ of the paper's grid. Cheap (one matrix product), noisy, and
    only for comparing epochs of one run: `gannet eval parzen` gives the paper's figure."""
    from gannet.noise import sample_codes

    G = generator.eval()
    z = sample_codes(config, config.parzen_samples, generator=torch.Generator().manual_seed(config.seed))
    samples = torch.cat([G(chunk.to(device)) for chunk in z.split(10_000)])
    G.train()
    if torch.device(device).type == "mps":  # Apple's GPU has no float64, which the estimate sums in
        samples, device = samples.cpu(), "cpu"
    lls = parzen_log_likelihoods(data.valid[-MONITOR_VALID:].to(device), samples, PAPER_SIGMAS).mean(dim=1)
    best = int(lls.argmax())
    return {name: lls[best].item(), name.replace("valid", "sigma"): PAPER_SIGMAS[best]}
