import math

import pytest
import torch

from gannet.noise import sample_noise


def test_uniform_sqrt3_has_unit_variance_and_the_papers_range():
    z = sample_noise("uniform-sqrt3", 200_000, 1, generator=torch.Generator().manual_seed(0))
    assert z.min() >= -math.sqrt(3) and z.max() <= math.sqrt(3)
    assert z.max() > 1.7 and z.min() < -1.7
    assert z.var().item() == pytest.approx(1.0, abs=0.01)
    assert z.mean().item() == pytest.approx(0.0, abs=0.01)


def test_uniform_and_gaussian_priors():
    rng = torch.Generator().manual_seed(0)
    u = sample_noise("uniform", 100_000, 2, generator=rng)
    assert u.shape == (100_000, 2) and u.min() >= -1 and u.max() <= 1
    assert u.var().item() == pytest.approx(1 / 3, abs=0.01)
    g = sample_noise("gaussian", 100_000, 1, generator=rng)
    assert g.std().item() == pytest.approx(1.0, abs=0.01) and g.abs().max() > 3


def test_noise_is_reproducible_from_a_seed():
    a = sample_noise("uniform-sqrt3", 5, 3, generator=torch.Generator().manual_seed(7))
    b = sample_noise("uniform-sqrt3", 5, 3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
