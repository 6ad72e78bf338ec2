"""symloss.train.seed_soup: each loss's weights averaged over consecutive groups of its training seeds."""

import pytest
import torch

from symloss.train import seed_soup


def test_seed_soup_averages_each_losses_own_seeds():
    """A soup of G seeds is the mean of exactly those G members' weights (members laid out loss-major)."""
    g = torch.Generator().manual_seed(3)
    n_losses, n_seeds = 3, 4
    params = {"W0": torch.randn(n_losses * n_seeds, 5, 2, generator=g),
              "b0": torch.randn(n_losses * n_seeds, 2, generator=g)}
    soups = seed_soup(params, n_losses, n_seeds, 2)
    assert soups["W0"].shape == (n_losses * 2, 5, 2) and soups["b0"].shape == (n_losses * 2, 2)
    for p in range(n_losses):
        for k in range(2):
            members = [p * n_seeds + 2 * k, p * n_seeds + 2 * k + 1]
            for key in params:
                torch.testing.assert_close(soups[key][p * 2 + k], params[key][members].mean(0))
    torch.testing.assert_close(seed_soup(params, n_losses, n_seeds, 1)["W0"], params["W0"])


@pytest.mark.parametrize("size, leading, message", [(3, 12, "must be >= 1 and divide the 4 seeds"),
                                                    (2, 10, r"leading size 10, expected P \* S")])
def test_seed_soup_refuses_a_bad_layout(size, leading, message):
    with pytest.raises(ValueError, match=message):
        seed_soup({"W0": torch.zeros(leading, 2)}, 3, 4, size)
