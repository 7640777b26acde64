"""Principal-component map panels for animations (``scripts/animate.py --panels rgba,pc1,pc2``).

A PC panel colours each alive cell by its score on one principal component of the hidden
channels; dead cells show the background (white). The PCA is fitted once per animation,
on the first model's own growth from the seed (alive cells at four steps spread over the
animation, at most step 200) -- the same PCA as ``scripts/pca_report.py``'s default, so
the colours of an animation and a report mean the same thing. The colour range is fixed
for the whole animation: +-the 99th percentile of |score| over the fitted cells.
A caller holding a PCA already (``scripts/dissect.py``: its report's) passes it with
``fitted`` so that the panels show exactly that one.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from nca.render import PANEL_KINDS, Legend, apply_colormap

from analysis.representation.pca import CellPCA, fit_cell_pca, state_features

MAX_COMPONENTS = 6
FIT_STEPS_CAP = 200


@dataclass(frozen=True)
class PCPanel:
    """Scores of component ``index`` (0-based) of ``pca`` over the hidden channels, in
    [-vmax, vmax]; state [H, W, C] -> RGB [H, W, 3]."""

    pca: CellPCA
    index: int
    vmax: float
    alive_threshold: float = 0.1

    @property
    def title(self) -> str:
        return f"PC{self.index + 1} ({self.pca.explained_variance_ratio[self.index]:.0%})"

    @property
    def legend(self) -> Legend:
        return Legend(-self.vmax, self.vmax)

    def __call__(self, state: np.ndarray) -> np.ndarray:
        state = np.asarray(state)
        alive = state[..., 3] > self.alive_threshold
        rgb = np.ones(state.shape[:-1] + (3,), np.float32)
        if alive.any():
            scores = self.pca.transform(state_features(state, self.pca.features)[alive])[:, self.index]
            rgb[alive] = apply_colormap(scores, -self.vmax, self.vmax)
        return rgb


def fit_steps(steps: int) -> list[int]:
    """Four steps spread over the animation (capped at FIT_STEPS_CAP): t/4, t/2, 3t/4, t."""
    last = max(4, min(steps, FIT_STEPS_CAP))
    return sorted({max(1, last * k // 4) for k in (1, 2, 3, 4)})


def score_range(pca: CellPCA, features: np.ndarray) -> np.ndarray:
    """Each component's colour range [k]: the 99th percentile of |score| over the cells the
    PCA was fitted on (features [N, F])."""
    return np.percentile(np.abs(pca.transform(features)), 99, axis=0)


def fitted(pca: CellPCA, features: np.ndarray) -> dict:
    """The panel context entry that makes an animation's pc panels show ``pca`` (fitted
    elsewhere, e.g. a report's pooled PCA; features [N, F]: its fitted cells) instead of
    fitting their own: ``nca.animate.export(..., panel_context=fitted(pca, features))``."""
    return {"pc_fit": (pca, score_range(pca, features))}


def fit_panel_pca(model, size: int, steps: int, seed: int) -> tuple[CellPCA, np.ndarray]:
    """The PCA the panels show, and each component's colour range [k]."""
    import nca

    at = fit_steps(steps)
    _, traj = nca.grow(model, at[-1], jax.random.key(seed), size=size, record=("state",))
    states = np.asarray(traj.states)[np.asarray(at) - 1]  # traj.states[t-1] is the state after t steps
    alive = states[..., 3] > model.model_config.alive_threshold
    pca = fit_cell_pca(state_features(states), alive, n_components=MAX_COMPONENTS)
    return pca, score_range(pca, state_features(states)[alive])


def _factory(index: int):
    def make(name: str, ctx: dict) -> PCPanel:
        model = ctx["models"][0]
        if "pc_fit" not in ctx:  # one fit per animation, shared by its pc panels
            ctx["pc_fit"] = fit_panel_pca(model, ctx["size"], ctx["steps"], ctx["seed"])
        pca, vmax = ctx["pc_fit"]
        return PCPanel(pca, index, float(max(vmax[index], 1e-6)), model.model_config.alive_threshold)

    return make


def register() -> None:
    """Make ``pc1`` .. ``pc6`` known to ``--panels``."""
    for i in range(MAX_COMPONENTS):
        PANEL_KINDS.setdefault(f"pc{i + 1}", _factory(i))
