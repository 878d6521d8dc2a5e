import math

import torch

from gannet.theory import (
    LEARNED_D_TOL,
    PROBLEMS,
    Gaussian,
    jensen_shannon,
    learned_gap,
    quadrature_grid,
    value_at_optimum,
)

from .conftest import gannet


def test_theorem1_at_known_values():
    x = quadrature_grid()
    same = Gaussian(0, 1).pdf(x)
    assert abs(value_at_optimum(same, same, x) + math.log(4)) < 1e-12
    assert abs(jensen_shannon(same, same, x)) < 1e-12
    # disjoint supports: JSD = log 2, so V(D*, G) = -log 4 + 2 log 2 = 0
    far = Gaussian(0, 0.5).pdf(x), Gaussian(10, 0.5).pdf(x)
    assert abs(jensen_shannon(*far, x) - math.log(2)) < 1e-9
    assert abs(value_at_optimum(*far, x)) < 1e-9


def test_a_discriminator_that_learned_nothing_fails_the_proposition_check():
    class Half(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(len(x))  # D(x) = 1/2 everywhere

    p_data, p_g = PROBLEMS["shifted"]
    assert learned_gap(Half(), p_data, p_g) > 3 * LEARNED_D_TOL


def test_theory_command_passes_every_check(capsys):
    code, out = gannet("theory", capsys=capsys)
    lines = out.out.strip().splitlines()[1:]
    assert code == 0 and len(lines) == 7 and all(line.endswith("yes") for line in lines)
    assert "p_g = p_data   V(D*, G) vs -log 4" in out.out and "-1.386294" in out.out
