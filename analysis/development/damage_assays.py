"""Damage assays: a standard panel of wounds -> recovery curves, time to recover, success.

Protocol: grow ``replicates`` bodies from the seed for ``grow_steps`` (independent fire
masks), inflict each damage of the panel on a copy (all 16 channels of the erased cells set
to 0, as ``nca.animate`` does), let every copy and an undamaged control regrow for
``regrow_steps`` with the same keys, and measure the loss (MSE of the RGBA as seen, clipped
to [0, 1], to the target) every ``every`` steps.

The panel (``PANEL``): the article's regeneration cuts (``nca.damage.Cut``: left half,
central square), random training-like discs (``nca.damage.circle_masks``, 3 at once),
scattered cell loss (each cell erased with probability 0.5), and two shapes never seen in
training: a horizontal stripe through the centre (height H//8) and a ring around the centre
(radii 0.12 and 0.22 of the grid) that cuts the core off from the limbs.

Recovery, per replicate: ``gap(t) = L(t) - L_control(t)``. Recovered at t when ``gap(t) <=
0.1 * gap(0)`` or ``gap(t) <= 0.02 * L_empty`` (a gap below 2% of an empty grid's loss
counts as recovered whatever the initial gap). ``time_to_recover``: the first measured step
from which it stays recovered; None if it is not recovered at the end. ``success``:
recovered at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from nca.damage import circle_masks
from nca.errors import NCAError, require_at_least
from nca.model import ModelConfig, seed_state, to_rgba
from nca.train import per_sample_loss

from analysis.causal.knockouts import advance, empty_loss
from analysis.representation.axes import cell_rc

PANEL = ("cut_left", "square", "circles", "scatter", "stripe", "ring")
HEX_WOUND_GEOMETRY = ("hex grid: every wound is drawn in the body's Euclidean frame (each cell at its lattice point, "
                      "analysis.development.damage_assays.wound_grid: a disc is a disc, a half is cut straight) and the "
                      "gallery is drawn in that frame (analysis.rollouts.euclidean); the loss is per cell")
UNSEEN = ("stripe", "ring")


# Where each cell sits (array indices on the square grid, lattice points on the hex grid):
# one home, ``analysis.representation.axes.cell_rc``; the wounds are drawn with it.
wound_grid = cell_rc


def _circles_at(key: jax.Array, n: int, ii: np.ndarray, jj: np.ndarray) -> np.ndarray:
    """``nca.damage.circle_masks`` (the article's discs: centres U(-0.5, 0.5), radii U(0.1,
    0.4) on coordinates running over [-1, 1]) at cell positions ``ii``, ``jj`` [H, W] in grid
    units -> bool [n, H, W]. The same draws as ``circle_masks`` for the same key."""
    h, w = ii.shape
    kc, kr = jax.random.split(key)
    centre = np.asarray(jax.random.uniform(kc, (2, n, 1, 1), minval=-0.5, maxval=0.5))
    r = np.asarray(jax.random.uniform(kr, (n, 1, 1), minval=0.1, maxval=0.4))
    x = (-1.0 + 2.0 * jj / (w - 1))[None] - centre[0]
    y = (-1.0 + 2.0 * ii / (h - 1))[None] - centre[1]
    return (x / r) ** 2 + (y / r) ** 2 < 1.0


def damage_masks(kind: str, key: jax.Array, n: int, height: int, width: int, topology: str = "square") -> np.ndarray:
    """bool [n, H, W], True where cells are erased (random kinds differ per replicate). Each
    cell is placed by ``wound_grid``: its array index on the square grid, its lattice point on
    the hex grid, so every wound has the shape it names in the body's Euclidean frame."""
    ii, jj = wound_grid(height, width, topology)
    cy, cx = height // 2, width // 2
    if kind == "cut_left":  # as ``nca.damage.Cut("left")``
        m = jj < cx
    elif kind == "square":  # as ``nca.damage.Cut("square")``: side H//3 x W//3 from (side // 2) before the seed
        sh, sw = height // 3, width // 3
        m = (ii >= cy - sh // 2) & (ii < cy - sh // 2 + sh) & (jj >= cx - sw // 2) & (jj < cx - sw // 2 + sw)
    elif kind == "stripe":
        h = max(1, height // 8)
        top = height // 2 - h // 2
        m = (ii >= top) & (ii < top + h)
    elif kind == "ring":
        r = np.hypot(ii - cy, jj - cx) / min(height, width)
        m = (r >= 0.12) & (r <= 0.22)
    elif kind == "circles":
        discs = (np.asarray(circle_masks(key, 3 * n, height, width)) > 0 if topology != "hex"
                 else _circles_at(key, 3 * n, ii, jj))
        return discs.reshape(n, 3, height, width).any(1)
    elif kind == "scatter":  # no shape: the same on either grid
        return np.asarray(jax.random.bernoulli(key, 0.5, (n, height, width)))
    else:
        raise NCAError(f"unknown damage {kind!r}; choose from {PANEL}")
    return np.broadcast_to(m, (n, height, width)).copy()


@dataclass(frozen=True)
class Protocol:
    """grow_steps, regrow_steps: CA steps before and after the damage; replicates: bodies
    (independent fire masks; random wounds differ); every: measure the loss every N steps;
    rel_tol, abs_tol: the recovery rule (abs_tol as a fraction of the empty grid's loss)."""

    grow_steps: int = 200
    regrow_steps: int = 300
    replicates: int = 5
    every: int = 5
    rel_tol: float = 0.1
    abs_tol: float = 0.02  # as a fraction of the empty grid's loss


# Named PRNG streams (``jax.random.fold_in(key, stream + i)`` for the i-th damage kind).
WOUND_STREAM = 0x77_0000  # the random wounds (circles, scatter)
BOOTSTRAP_STREAM = 0x64_6D67  # the summaries' bootstrap ("dmg")


def recovery(loss: np.ndarray, control: np.ndarray, steps: np.ndarray, empty: float,
             rel_tol: float = 0.1, abs_tol: float = 0.02) -> dict:
    """loss, control: [T, B] measured at ``steps`` [T] (steps[0] = right after the damage).

    -> {"recovered" [T, B] bool, "time_to_recover" [B] (None: not recovered), "success" [B],
    "recovery_fraction" [T, B] = 1 - gap(t) / gap(0)}."""
    gap = np.asarray(loss, np.float64) - np.asarray(control, np.float64)
    ok = (gap <= rel_tol * gap[:1]) | (gap <= abs_tol * empty)
    times = []
    for b in range(ok.shape[1]):
        bad = np.nonzero(~ok[:, b])[0]
        if not ok[-1, b]:
            times.append(None)
        else:
            times.append(int(steps[bad[-1] + 1]) if bad.size else int(steps[0]))
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = 1.0 - gap / np.where(np.abs(gap[:1]) > 1e-12, gap[:1], np.nan)
    return {"recovered": ok, "time_to_recover": times, "success": ok[-1].tolist(), "recovery_fraction": frac}


def run_panel(params, cfg: ModelConfig, target, key: jax.Array, grid: int, protocol: Protocol = Protocol(),
              panel=PANEL, progress=None) -> dict:
    """Grow, damage with each kind of ``panel``, regrow; one batched rollout for everything.

    Returns a dict: ``steps`` [T] (steps since the damage), ``empty_loss``, ``control``
    {"loss" [T][B]}, per kind {"erased_fraction" [B] (of the alive body), "loss" [T][B],
    "time_to_recover" [B], "success" [B], "success_rate", "median_time", "final_gap"
    [B]}; and ``snapshots``: RGBA of replicate 0 per kind (NumPy [3, H, W, 4]: right after
    the damage, half-way, end) for figures (not JSON)."""
    p = protocol
    b = p.replicates
    seed = seed_state(grid, grid, cfg, batch=b)
    grown = np.asarray(advance(params, seed, key, p.grow_steps, cfg))
    alive = grown[..., 3] > cfg.alive_threshold
    masks = [np.zeros((b, grid, grid), bool)]  # the undamaged control first
    for i, kind in enumerate(panel):
        masks.append(damage_masks(kind, jax.random.fold_in(key, WOUND_STREAM + i), b, grid, grid, cfg.topology))
    masks = np.concatenate(masks)  # [(K+1) * B, H, W]
    x = jnp.asarray(np.tile(grown, (len(panel) + 1, 1, 1, 1)) * (1.0 - masks[..., None]))
    target = jnp.asarray(target)
    n_chunks = -(-p.regrow_steps // p.every)
    steps, losses, snaps = [0], [np.asarray(per_sample_loss(to_rgba(x), target))], [np.asarray(to_rgba(x[::b]))]
    half = n_chunks // 2
    t = p.grow_steps
    for c in range(n_chunks):
        n = min(p.every, p.regrow_steps - c * p.every)
        x = advance(params, x, key, n, cfg, t)
        t += n
        steps.append(t - p.grow_steps)
        losses.append(np.asarray(per_sample_loss(to_rgba(x), target)))
        if c + 1 in (half, n_chunks):
            snaps.append(np.asarray(to_rgba(x[::b])))
        if progress is not None:
            progress(n)
    steps = np.array(steps)
    loss = np.stack(losses).reshape(len(steps), len(panel) + 1, b)  # [T, K+1, B]
    empty = empty_loss(target)
    out = {"steps": steps.tolist(), "empty_loss": empty, "grow_steps": p.grow_steps,
           "control": {"loss": loss[:, 0].tolist()}, "damages": {}}
    snaps = np.stack(snaps, 1)  # [K+1, 3, H, W, 4]
    for i, kind in enumerate(panel):
        rec = recovery(loss[:, i + 1], loss[:, 0], steps, empty, p.rel_tol, p.abs_tol)
        m = masks[(i + 1) * b:(i + 2) * b]
        erased = (m & alive).sum((1, 2)) / np.maximum(alive.sum((1, 2)), 1)
        times = [t for t in rec["time_to_recover"] if t is not None]
        out["damages"][kind] = {
            "unseen_in_training": kind in UNSEEN, "erased_fraction": erased.tolist(),
            "loss": loss[:, i + 1].tolist(), "recovery_fraction": rec["recovery_fraction"].tolist(),
            "time_to_recover": rec["time_to_recover"], "success": rec["success"],
            "success_rate": float(np.mean(rec["success"])),
            "median_time": float(np.median(times)) if times else None,
            "final_gap": (loss[-1, i + 1] - loss[-1, 0]).tolist(),
        }
    out["snapshots"] = {kind: snaps[i + 1] for i, kind in enumerate(panel)}
    out["snapshots"]["control"] = snaps[0]
    return out


# --------------------------------------------------------------------------- the pipeline
# scripts/damage_report.py: argparse -> DamageSettings -> run -> figures and page.


@dataclass(frozen=True)
class DamageSettings:
    """A damage report: the protocol, the panel of wounds, the one seed, the grid size
    (None: each model's training grid)."""

    protocol: Protocol = Protocol()
    panel: tuple[str, ...] = PANEL
    seed: int = 0
    size: int | None = None

    def __post_init__(self):
        from nca.errors import NCAError

        p = self.protocol
        require_at_least(p, ("grow_steps", "regrow_steps", "replicates", "every"), 1)
        bad = set(self.panel) - set(PANEL)
        if bad or not self.panel:
            raise NCAError(f"unknown damage(s) {sorted(bad)}; choose from {', '.join(PANEL)}")


def kind_summary(d: dict, rng: np.random.Generator) -> dict:
    """Intervals of one damage kind over its replicates: success rate (Wilson), median time
    to recover over the recovered replicates (percentile bootstrap; null with a reason when
    fewer than 2 recovered), erased fraction and final gap (t intervals)."""
    from analysis.stats import bootstrap_ci, mean_ci, proportion_ci

    times = np.array([np.nan if t is None else t for t in d["time_to_recover"]], float)
    ok = times[np.isfinite(times)]
    if ok.size >= 2:
        med = bootstrap_ci(ok, np.median, rng)
    else:
        med = {"value": float(ok[0]) if ok.size else None, "lo": None, "hi": None, "n": int(ok.size),
               "reason": "fewer than 2 replicates recovered"}
    return {"success_rate": proportion_ci(d["success"]), "median_time": med,
            "erased_fraction": mean_ci(d["erased_fraction"]), "final_gap": mean_ci(d["final_gap"])}


def run(models, s: DamageSettings, progress=None) -> dict:
    """Every model's damage panel (``run_panel``) with intervals over replicates.

    -> {"results": [per model {model, **run_panel's dict, "intervals": {kind: kind_summary}}],
    "snapshots": per model run_panel's snapshots (NumPy, for figures)}."""
    from nca.errors import NCAError

    from analysis.causal.knockouts import target_on_grid

    rng = np.random.default_rng(np.random.SeedSequence([s.seed, BOOTSTRAP_STREAM]))
    results, snapshots = [], []
    for m in models:
        grid = s.size or m.grid_size
        target = target_on_grid(m.target_image(), grid)
        r = run_panel(m.params, m.model_config, target, jax.random.key(s.seed), grid, s.protocol, s.panel, progress)
        ctrl = np.array(r["control"]["loss"])[0]
        if np.all(ctrl > 0.5 * r["empty_loss"]):
            raise NCAError(f"{m.name} has not grown its target after {s.protocol.grow_steps} steps (loss "
                           f"{ctrl.mean():.4f}, an empty grid: {r['empty_loss']:.4f}); raise --grow")
        snapshots.append(r.pop("snapshots"))
        r["intervals"] = {k: kind_summary(r["damages"][k], rng) for k in s.panel}
        results.append({"model": m.name, **r})
    return {"results": results, "snapshots": snapshots}
