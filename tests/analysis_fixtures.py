"""Shared, cached inputs of the analysis tests (kept out of conftest.py on purpose)."""

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=None)
def _lizard_states() -> np.ndarray:
    import jax

    import nca
    from analysis.rollouts import grow_states

    return grow_states(nca.load_model("distill:lizard/persistent"), 60, jax.random.key(0))


def lizard_states_60() -> np.ndarray:
    """The published persistent lizard grown 60 steps: [61, 1, 72, 72, 16] (index = step).
    Read-only: grown once per test session."""
    s = _lizard_states()
    s.setflags(write=False)
    return s
