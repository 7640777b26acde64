"""Comparing PCAs: subspace similarity across models and seeds, rotations, emergence.

Pure NumPy functions. Two ways to compare the first k components of two PCAs:

* ``loading_angles_deg``: principal angles between the spans of the loadings (in feature
  space). Meaningful when both PCAs use the same features with the same meaning: two seeds
  of one model, one model grown rotated. Separately trained models have unrelated hidden
  channels, so for them this number says little.
* ``map_angles_deg``: principal angles between the spans of the PC *maps* over the cells
  alive in both bodies (equivalently, the arccos of the canonical correlations of the two
  score sets). Model-agnostic: do the two models' first k PCs vary over the body in the same
  spatial patterns, whatever channels carry them? 0 deg = same span, 90 = orthogonal.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import subspace_angles

from nca.errors import NCAError

from analysis.representation.axes import wrap180


def loading_angles_deg(components_a: np.ndarray, components_b: np.ndarray) -> np.ndarray:
    """Principal angles (degrees, ascending) between row spans. [k, F], [k', F] -> [min(k, k')]."""
    a, b = np.asarray(components_a, np.float64), np.asarray(components_b, np.float64)
    if a.shape[1] != b.shape[1]:
        raise NCAError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    return np.sort(np.rad2deg(subspace_angles(a.T, b.T)))


def map_angles_deg(maps_a: np.ndarray, maps_b: np.ndarray) -> tuple[np.ndarray, int]:
    """Principal angles (degrees, ascending) between the spans of two sets of PC maps.

    maps_a: [..., H, W, k]; maps_b: [..., H, W, k'] over the same grid (NaN = dead). Each
    map is centred over the cells alive in both. Returns (angles [min(k, k')], n_common).
    """
    a = np.asarray(maps_a, np.float64)
    b = np.asarray(maps_b, np.float64)
    if a.shape[:-1] != b.shape[:-1]:
        raise NCAError(f"grids differ: {a.shape[:-1]} vs {b.shape[:-1]}")
    common = np.isfinite(a).all(-1) & np.isfinite(b).all(-1)
    n = int(common.sum())
    if n <= max(a.shape[-1], b.shape[-1]):
        raise NCAError(f"only {n} cells alive in both bodies: too few to compare")
    xa, xb = a[common], b[common]
    return np.sort(np.rad2deg(subspace_angles(xa - xa.mean(0), xb - xb.mean(0)))), n


def null_loading_angles_deg(key, dim: int, k: int, samples: int = 300) -> np.ndarray:
    """Median principal angles (ascending) between two random k-dim subspaces of R^dim.

    The baseline for ``loading_angles_deg``: in low dimension, unrelated subspaces already
    have small leading angles (k=6 in R^12: the smallest is ~5 deg in the median).
    key: a JAX PRNG key. Returns [k].
    """
    import jax

    # NumPy draws seeded from the key: jax.random.normal would compile a program (seconds
    # on a CPU) for a baseline that needs no accelerator.
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    g = rng.standard_normal((samples, 2, dim, k))
    angles = np.stack([np.sort(np.rad2deg(subspace_angles(a, b))) for a, b in g])
    return np.median(angles, axis=0)


def matched_cosines(components_a: np.ndarray, components_b: np.ndarray) -> np.ndarray:
    """|cos| between component j of A and its best match in B. [k, F], [k', F] -> [k]."""
    return np.abs(np.asarray(components_a) @ np.asarray(components_b).T).max(1)


def measured_rotation(ref_deg, rotated_deg) -> np.ndarray:
    """Signed rotation (degrees, (-180, 180]) from reference to rotated directions."""
    return wrap180(np.asarray(rotated_deg) - np.asarray(ref_deg))


def emergence_step(steps, kinds, final_kind: str | None = None) -> int | None:
    """First step from which a component keeps its final kind until the end.

    steps: [T] ascending; kinds: [T] labels; final_kind: default the last label. None when
    the final kind is "none" (nothing emerged).
    """
    final = kinds[-1] if final_kind is None else final_kind
    if final == "none" or not len(kinds):
        return None
    first = len(kinds)
    for i in range(len(kinds) - 1, -1, -1):
        if kinds[i] != final:
            break
        first = i
    return int(steps[first]) if first < len(kinds) else None
