"""How ``gf.bptt`` draws the weights of ``Randomized(pi, seed)``, for tests that enumerate keep patterns."""

from __future__ import annotations

import numpy as np


def seed_for_each_pattern(steps: int, pi: float, groups: int = 1) -> dict[tuple[bool, ...], int]:
    """One seed per keep pattern of the draws of ``Randomized(pi, seed)`` with one sequence (B = 1).

    The pattern is ordered (group, step), group 0 forward and 1 backward. This mirrors how bptt draws
    -- ``default_rng(seed).random((groups, T, B)) < pi``, one draw per time step and per direction
    group -- so it is an implementation detail: if the draws change, the exact-expectation tests and
    the symbolic agreement test fail, and this must follow them.
    """
    seeds: dict[tuple[bool, ...], int] = {}
    seed = 0
    while len(seeds) < 2 ** (steps * groups):
        draws = np.random.default_rng(seed).random((groups, steps, 1)) < pi
        seeds.setdefault(tuple(draws.ravel()), seed)
        seed += 1
    return seeds
