"""Trajectory-plane grids (Double-Win Fig. 6 / A9): the final model (0, 0) is a grid point, so the
grid's value there is the final model's loss (with 3 points it used to fall between grid points)."""
from __future__ import annotations

import numpy as np
import pytest

from repro.landscape import grid_axes


@pytest.mark.parametrize("points", [3, 4, 9])
def test_grid_holds_the_origin_exactly_and_covers_the_trajectory(points):
    rng = np.random.default_rng(points)
    for sign in (1, -1, 0):
        for _ in range(50):
            c = rng.normal(size=(5, 2)) * rng.uniform(0.01, 10)
            c = np.abs(c) * sign if sign else c
            for ax, col in zip(grid_axes(c, points), c.T):
                assert len(ax) == points and np.count_nonzero(ax == 0) == 1
                assert ax.min() <= min(col.min(), 0) and ax.max() >= max(col.max(), 0)
                assert np.allclose(np.diff(ax), ax[1] - ax[0])


def test_old_failure_case_three_points():
    """The case the smoke tier hit: 3 points, trajectory on one side; the centre used to be -0.156."""
    a, _ = grid_axes(np.array([[0.0, 0.0], [-0.3, 0.1], [-0.6, 0.4]]), 3)
    assert 0.0 in a
