import sys
from pathlib import Path

# Run against this checkout (not an installed copy) and make scripts/ importable.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pytest


@pytest.fixture(scope="session")
def lizard_states():
    """The published persistent lizard grown 60 steps: [61, 1, 72, 72, 16] (index = step)."""
    import jax

    import nca
    from analysis.rollouts import grow_states

    return grow_states(nca.load_model("distill:lizard/persistent"), 60, jax.random.key(0))
