"""Cell-state PCA: samples are alive cells, features are channels or activations.

Pure functions over arrays (scipy's SVD for the fit, exactly as scikit-learn's
``PCA(svd_solver="full")`` solves it). Layout: a stack of grids
``[S, H, W, F]`` (S = analysed steps, or steps x seeds flattened) with an alive mask
``[S, H, W]``; PC maps come back as ``[S, H, W, k]`` with NaN at dead cells.

Sign convention: a PC's sign is arbitrary in PCA; every component here is flipped so that
its largest-magnitude loading is positive. It depends only on the loadings, not on the
cells' order or position, so a rotated or re-ordered copy of the data gets the same signs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

from nca.errors import NCAError

# What ``--features`` can select: (Trajectory field or "state", channel slice or None).
FEATURES = {
    "hidden": "the 12 hidden state channels (4-15)",
    "state": "all 16 state channels (RGBA + hidden)",
    "perception": "the 48 perception features (identity, Sobel-x, Sobel-y of each channel)",
    "mlp": "the 128 hidden-layer (ReLU) activations of the update MLP",
}


@dataclass(frozen=True)
class CellPCA:
    """A fitted PCA of cell states.

    components: [k, F] unit loadings (sign: largest |loading| positive); mean, scale: [F]
    (scale is 1 unless standardised); explained_variance(_ratio): [k]; n_samples: cells
    used; features: the feature set's name.
    """

    components: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    n_samples: int
    features: str = "hidden"

    @property
    def n_components(self) -> int:
        return self.components.shape[0]

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scores of samples. x: [n, F] -> [n, k]."""
        return ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.components.T


def canonical_signs(components: np.ndarray) -> np.ndarray:
    """Flip each row of ``components [k, F]`` so its largest-magnitude entry is positive."""
    idx = np.argmax(np.abs(components), axis=1)
    sign = np.sign(components[np.arange(len(components)), idx])
    return components * np.where(sign == 0, 1.0, sign)[:, None]


def state_features(states: np.ndarray, features: str = "hidden") -> np.ndarray:
    """Channel features of states. states: [..., H, W, C] -> [..., H, W, F]."""
    if features == "hidden":
        return states[..., 4:]
    if features == "state":
        return states
    raise NCAError(f"{features!r} is not a state feature set; use 'hidden' or 'state'")


def min_cells(n_components: int) -> int:
    """Fewest alive cells a grid needs for the analysis to mean anything."""
    return max(10, n_components + 2)


def fit_cell_pca(features: np.ndarray, alive: np.ndarray, n_components: int = 6,
                 standardize: bool = False, name: str = "hidden") -> CellPCA:
    """PCA of the alive cells of a stack of grids, pooled over the stack.

    features: [S, H, W, F] (or [H, W, F]); alive: bool [S, H, W] (or [H, W]).
    standardize: divide each feature by its standard deviation over the samples first
    (features with zero spread keep scale 1).
    """
    features = np.asarray(features)
    alive = np.asarray(alive, bool)
    if features.shape[:-1] != alive.shape:
        raise NCAError(f"features {features.shape} and alive {alive.shape} do not match")
    x = features[alive].astype(np.float64)
    n, f = x.shape
    if n < min_cells(n_components):
        raise NCAError(f"only {n} alive cells to analyse; need at least {min_cells(n_components)} "
                       "(choose later steps, or check that the model grows)")
    if n_components > f:
        raise NCAError(f"asked for {n_components} components but the features have only {f} dimensions")
    mean = x.mean(0)
    scale = x.std(0) if standardize else np.ones(f)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = (x - mean) / scale
    # scikit-learn's PCA(svd_solver="full") step for step (bit-identical, a test checks it),
    # without its import, which cost about 1 s of every report's start.
    _, sv, vt = linalg.svd(z - z.mean(0), full_matrices=False)
    var = sv ** 2 / (n - 1)
    return CellPCA(canonical_signs(vt[:n_components]), mean, scale, var[:n_components],
                   var[:n_components] / var.sum(), n, name)


def pc_maps(pca: CellPCA, features: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Scores mapped back onto the grid. features: [..., H, W, F]; alive: [..., H, W]
    -> [..., H, W, k] float64, NaN where dead."""
    alive = np.asarray(alive, bool)
    out = np.full(alive.shape + (pca.n_components,), np.nan)
    out[alive] = pca.transform(np.asarray(features)[alive])
    return out


def variance_captured(pca: CellPCA, features: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Per grid, the fraction of its own total variance each (pooled) component captures.

    features: [S, H, W, F]; alive: [S, H, W] -> [S, k]: var(score_j) / sum of the
    (scaled) feature variances, both over that grid's alive cells. For a PCA fitted on one
    grid this equals its explained_variance_ratio.
    """
    out = np.full((alive.shape[0], pca.n_components), np.nan)
    for s in range(alive.shape[0]):
        x = (np.asarray(features[s])[alive[s]] - pca.mean) / pca.scale
        if len(x) < 2:
            continue
        total = x.var(0).sum()
        if total > 0:
            out[s] = (x @ pca.components.T).var(0) / total
    return out


def fit_per_grid(features: np.ndarray, alive: np.ndarray, n_components: int = 6,
                 standardize: bool = False, name: str = "hidden") -> list[CellPCA]:
    """A separate PCA per grid of the stack (``--per-step``). [S, H, W, F] -> [CellPCA] * S."""
    return [fit_cell_pca(features[s], alive[s], n_components, standardize, name)
            for s in range(alive.shape[0])]
