"""The sparse-features report (scripts/features_report.py): a sparse autoencoder on the hidden
channels of living cells (``analysis.representation.sparse_features``), its reconstruction, sparsity and dead
features beside two controls, its features mapped on the body, and each feature's causal effect
on the body beside a norm-matched random direction.

``FeaturesSettings`` -> ``run(settings)`` -> ``FeaturesResult`` -> ``write(result, out)``
(report.json, index.html, PNGs) and ``summary_lines(result)``. Keys in docs/features.md.

Data: ``rollouts`` rollouts from the seed (independent fire masks), one frame every
``every`` steps up to ``grow``; every living cell (alpha > 0.1) of every frame after the seed
is a sample. The last replicate is held out: every measure is on its cells.

Controls, each trained and scored exactly as the model's cells:

* **shuffled**: each channel permuted across cells independently (marginals kept, joint
  structure gone); ``gain`` = FVE(cells) - FVE(shuffled), paired by SAE seed;
* **untrained**: a random rule of the same architecture (layer 1 as the article initialises
  it, Glorot-uniform; layer 2 Glorot-uniform times ``UNTRAINED_W2_SCALE``: the article's
  all-zero layer 2 is a rule that does nothing, whose only cell is the seed) grown by the same
  protocol. Most random rules die; the first of ``UNTRAINED_DRAWS`` draws whose rollouts have
  enough living cells is used (how many were tried is reported), or the control is reported
  missing with its reason.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from nca.errors import NCAError, require_at_least

from analysis.representation import sparse_features as S

UNTRAINED_W2_SCALE = 0.3
UNTRAINED_DRAWS = 10
CONDITIONS = ("growth", "persistence")
MAPS_SHOWN = 16


@dataclass(frozen=True)
class FeaturesSettings:
    """model: a run directory or published name; sae: the dictionary (``SAEConfig``); grow,
    every, rollouts: the rollouts the cells come from (the last one held out); fits: SAE
    trainings (seeds) per data set (intervals over them); condition, effect_steps,
    replicates: the causal test ("growth": the feature removed from the seed on for
    ``effect_steps``; "persistence": grown intact ``grow`` steps, then removed for
    ``effect_steps``), intervals over its replicates; untrained: train the untrained-rule
    control; layer: what the SAE reads, "channels" (the hidden channels of the state) or "mlp"
    (the update MLP's hidden activations, removed at the "hidden" hook); seed: the one PRNG seed; size: grid size (None: the model's)."""

    model: str
    sae: S.SAEConfig = S.SAEConfig()
    grow: int = 200
    every: int = 10
    rollouts: int = 3
    fits: int = 3
    condition: str = "growth"
    effect_steps: int = 100
    replicates: int = 3
    untrained: bool = True
    layer: str = "channels"
    seed: int = 0
    size: int | None = None
    command: str = ""

    def __post_init__(self):
        require_at_least(self, ("grow", "every", "fits", "effect_steps", "replicates"), 1)
        if self.rollouts < 2:
            raise NCAError(f"rollouts must be >= 2 (the last one is held out), got {self.rollouts}")
        if self.grow % self.every:
            raise NCAError(f"grow ({self.grow}) must be a multiple of every ({self.every})")
        if self.layer not in S.POINTS:
            raise NCAError(f"layer must be one of {', '.join(S.POINTS)}, got {self.layer!r}")
        if self.condition not in CONDITIONS:
            raise NCAError(f"condition must be one of {', '.join(CONDITIONS)}, got {self.condition!r}")


@dataclass(frozen=True)
class FeaturesResult:
    """report: every number (report.json after ``analysis.reports.html.json_safe``); figures:
    (name, title, caption, PNG bytes); rows: the page's feature table."""

    settings: FeaturesSettings
    report: dict
    figures: list = field(default_factory=list)
    rows: list = field(default_factory=list)


def inputs_of(model, states: np.ndarray, layer: str) -> np.ndarray:
    """What the SAE reads of each cell: states [..., H, W, C] -> the hidden channels [..., C - 4]
    ("channels") or the MLP's hidden activations computed from them [..., hidden] ("mlp")."""
    from analysis.rollouts import activations

    return np.asarray(states)[..., 4:] if layer == "channels" else activations(model, states, "mlp")


def collect(model, s: FeaturesSettings, key) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (train cells [N, d], held-out cells [M, d], states [T+1, B, H, W, C])."""
    from analysis.rollouts import grow_states

    states = grow_states(model, s.grow, key, seeds=s.rollouts, size=s.size or model.grid_size, every=s.every)
    alive = states[1:, ..., 3] > model.model_config.alive_threshold
    x = inputs_of(model, states[1:], s.layer)
    return x[:, :-1][alive[:, :-1]], x[:, -1][alive[:, -1]], states


def untrained_model(model, key):
    """The untrained control's rule (see the module docstring) drawn from ``key``."""
    from nca.model import init_params

    cfg = model.model_config
    k1, k2 = jax.random.split(key)
    p = init_params(k1, cfg)
    lim = UNTRAINED_W2_SCALE * np.sqrt(6.0 / (cfg.hidden + cfg.channels))
    p["w2"] = jax.random.uniform(k2, (cfg.hidden, cfg.channels), jnp.float32, -lim, lim)
    return dataclasses.replace(model, params=p, name=f"untrained ({model.name}'s architecture)")


def _needed(s: FeaturesSettings) -> int:
    return S.MIN_CELLS_PER_FEATURE * s.sae.n_features


def _scores(r: dict) -> dict:
    from analysis.stats import mean_ci

    return {k: mean_ci(r[k]) for k in ("fve", "l0", "dead", "pca_fve")} | {"per_seed": {k: r[k] for k in
                                                                                     ("fve", "l0", "dead", "pca_fve")}}


def _with_null(train, test, s: FeaturesSettings, rng) -> tuple[dict, dict, dict]:
    """The SAE on the cells and on their channel-shuffled copy -> (fit, shuffled fit, scores)."""
    from analysis.stats import mean_ci

    seeds = [s.seed * 1000 + i for i in range(s.fits)]
    fit = S.fit_and_score(train, test, s.sae, seeds)
    null = S.fit_and_score(train, test, s.sae, seeds, shuffle_rng=rng)
    gain = np.array(fit["fve"]) - np.array(null["fve"])
    scores = {"cells": _scores(fit), "shuffled": _scores(null), "gain": mean_ci(gain),
              "n_train_cells": int(len(train)), "n_test_cells": int(len(test))}
    return fit, null, scores


def run(settings: FeaturesSettings, progress=None, model=None, t_start: float | None = None) -> FeaturesResult:
    """Train, score and test the dictionary and its controls; draw the figures. progress: called
    with a count of finished units (SAE fits, then rollouts of the causal test)."""
    import nca

    from analysis.causal.knockouts import Start, advance, target_on_grid
    from analysis.plots import png_bytes
    from analysis.stats import fmt_ci, mean_ci, proportion_ci

    t_start = time.time() if t_start is None else t_start
    s = settings
    tick = progress or (lambda n: None)
    model = nca.load_model(s.model) if model is None else model
    cfg = model.model_config
    grid = s.size or model.grid_size
    key = jax.random.key(s.seed)
    train, test, states = collect(model, s, key)
    if len(train) < _needed(s) or len(test) == 0:
        raise NCAError(f"{model.name} has {len(train)} living cells in its training rollouts and {len(test)} held "
                       f"out: a dictionary of {s.sae.n_features} features needs at least {_needed(s)}")
    rng = np.random.default_rng(s.seed)
    fit, _, scores = _with_null(train, test, s, rng)
    tick(2)
    untrained = {"reason": "not run (untrained=False)"}
    if s.untrained:
        for draw in range(UNTRAINED_DRAWS):
            um = untrained_model(model, jax.random.fold_in(jax.random.key(s.seed), 0x5AE + draw))
            utr, ute, _ = collect(um, s, key)
            if len(utr) >= _needed(s) and len(ute) > 0:
                untrained = {"draw": draw, "draws_tried": draw + 1, **_with_null(utr, ute, s, rng)[2]}
                break
        else:
            untrained = {"reason": f"none of {UNTRAINED_DRAWS} random rules kept {_needed(s)} living cells",
                         "draws_tried": UNTRAINED_DRAWS}
    tick(2)
    sae, stand = fit["params"], fit["standardiser"]
    body = states[-1, 0]
    maps = S.feature_maps(sae, stand, s.sae, inputs_of(model, body, s.layer), body[..., 3] > cfg.alive_threshold)
    target = target_on_grid(model.target_image(), grid)
    seeds_x0 = np.asarray(nca.seed_state(grid, grid, cfg, batch=s.replicates))
    if s.condition == "growth":
        start = Start("growth", seeds_x0, 0, s.effect_steps)
    else:
        start = Start("persistence", np.asarray(advance(model.params, seeds_x0, key, s.grow, cfg)), s.grow,
                      s.effect_steps)
    eff = S.feature_effects(model, sae, stand, s.sae, start, key, target, jax.random.fold_in(key, 0xC0), progress=tick,
                              layer=s.layer)
    n = s.sae.n_features
    feats = []
    for i in range(n):
        excess = eff["effect"][i] - eff["control"][i]
        ci = mean_ci(excess)
        feats.append({"feature": i, "frequency": float(fit["frequency"][i]), "effect": mean_ci(eff["effect"][i]),
                      "control": mean_ci(eff["control"][i]), "excess": ci,
                      "specific": bool(ci["lo"] is not None and ci["lo"] > 0),
                      "diverged": int(eff["diverged"][i].sum()), "control_diverged": int(eff["diverged"][n + i].sum()),
                      "direction": sae["W_dec"][i].tolist(), "control_direction": eff["directions"][i].tolist()})
    order = sorted(range(n), key=lambda i: -(feats[i]["effect"]["mean"] or 0.0))
    live = [f["frequency"] > 0 for f in feats]
    report = {"model": model.name, "command": s.command,
              "settings": {**{k: v for k, v in dataclasses.asdict(s).items() if k not in ("sae", "command")},
                           "sae": dataclasses.asdict(s.sae), "grid": grid},
              "conventions": conventions(s),
              "reconstruction": {"model": scores, "untrained": untrained},
              "features": feats, "order_by_effect": order,
              "specific": {"count": int(sum(f["specific"] for f in feats)),
                           "below_control": int(sum(f["excess"]["hi"] is not None and f["excess"]["hi"] < 0 for f in feats)),
                           "rate": proportion_ci([f["specific"] for f in feats]),
                           "rate_among_live": proportion_ci([f["specific"] for f, ok in zip(feats, live) if ok])},
              "standardiser": {"mean": stand.mean.tolist(), "scale": stand.scale},
              "decoder_bias": sae["b_dec"].tolist()}
    pngs = [(nm, t, cap, png_bytes(f)) for nm, t, cap, f in figures(report, maps, body, eff["images"])]
    report["timing_s"] = time.time() - t_start
    rows = [[f"F{i}", feats[i]["frequency"], fmt_ci(feats[i]["effect"], 3), fmt_ci(feats[i]["control"], 3),
             fmt_ci(feats[i]["excess"], 3), "yes" if feats[i]["specific"] else "no"] for i in order]
    return FeaturesResult(s, report, pngs, rows)


def conventions(s: FeaturesSettings) -> dict:
    c = s.sae
    return {
        "cells": ("hidden channels (4..)" if s.layer == "channels" else "MLP hidden activations")
                 + f" of every living cell (alpha > 0.1) of {s.rollouts} rollouts, one frame "
                 f"every {s.every} steps from step {s.every} to {s.grow}; the last replicate held out",
        "sae": f"{c.n_features} features, {c.sparsity}" + (f" k={c.k}" if c.sparsity == "topk" else f" l1={c.l1}")
               + f", unit-norm decoder rows, Adam lr {c.lr}, {c.steps} steps of {c.batch} cells",
        "fve": "fraction of variance explained on the held-out cells (standardised)",
        "l0": "mean number of active features per held-out cell; dead: fraction of features active on none",
        "pca_fve": "FVE of the rank-ceil(L0) PCA of the training cells (the linear baseline)",
        "gain": "FVE(cells) - FVE(each channel shuffled across cells), paired by SAE seed",
        "intervals": f"reconstruction: mean and 95% t-interval over {s.fits} SAE seeds; causal effects: over "
                     f"{s.replicates} fire-mask replicates",
        "effect": "(L - L_intact) / (L_empty - L_intact) of the RGBA as seen (analysis.causal.knockouts); 0 = intact, "
                  "1 = as an empty grid; diverged replicates at the maximal loss",
        "control": "the same activation times a random unit direction (one per feature): norm-matched in every cell",
        "specific": "the 95% interval of effect - control (paired replicates) lies above 0",
        "condition": f"{s.condition}: the feature removed at the {S.POINTS[s.layer]} hook of every step for {s.effect_steps} steps"
                     + (" from the seed" if s.condition == "growth" else f" after {s.grow} intact steps"),
        "step": "step t = the state after t CA steps from the seed"}


def figures(report: dict, maps: np.ndarray, body: np.ndarray, images: np.ndarray) -> list[tuple]:
    """(name, title, caption, matplotlib figure): controls, maps, effects, gallery."""
    from matplotlib.figure import Figure

    from analysis.plots import fig_ci_bars, rgba_on_white

    rec = report["reconstruction"]
    labels, groups = [], {"SAE": [], "PCA at the same L0": []}
    for name, sc in (("cells", rec["model"]["cells"]), ("shuffled", rec["model"]["shuffled"]),
                     ("untrained", (rec["untrained"].get("cells") or {})),
                     ("untr. shuffled", (rec["untrained"].get("shuffled") or {}))):
        labels.append(name)
        groups["SAE"].append(sc.get("fve"))
        groups["PCA at the same L0"].append(sc.get("pca_fve"))
    figs = [("controls", "Reconstruction beside the controls",
             "Fraction of variance explained on held-out cells; error bars: 95% interval over SAE seeds. "
             "An empty bar: the control could not be run (see report.json).",
             fig_ci_bars(labels, groups, "fraction of variance explained", "FVE", hline=1.0))]
    feats, order = report["features"], report["order_by_effect"]
    shown = order[:MAPS_SHOWN]
    cols = 4
    rows = 1 + (len(shown) + cols - 1) // cols
    fig = Figure(figsize=(2.0 * cols, 2.0 * rows))
    ax = fig.add_subplot(rows, cols, 1)
    ax.imshow(rgba_on_white(body))
    ax.set_title("body", fontsize=8)
    ax.axis("off")
    for j, i in enumerate(shown):
        ax = fig.add_subplot(rows, cols, cols + j + 1)
        ax.imshow(maps[i], cmap="magma", vmin=0)
        ax.set_title(f"F{i}: effect {feats[i]['effect']['mean']:.2f}", fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    figs.append(("maps", "Features mapped on the body",
                 f"Activation of each feature on the living cells at step {report['settings']['grow']} (replicate 0), "
                 f"the {len(shown)} features of largest causal effect; black: inactive or dead cell.", fig))
    figs.append(("effects", "Causal effect of each feature",
                 "Body effect of removing each feature at every step, beside the same removal along a random unit "
                 "direction (norm-matched); error bars: 95% interval over replicates.",
                 fig_ci_bars([f"F{i}" for i in order], {"feature": [feats[i]["effect"] for i in order],
                                                       "random direction": [feats[i]["control"] for i in order]},
                             "effect on the body", "effect (0 intact, 1 empty)", hline=1.0)))
    g = order[:min(7, len(order))]
    fig = Figure(figsize=(1.6 * (len(g) + 1), 1.9))
    for j, (img, title) in enumerate([(images[0], "intact")] + [(images[1 + i], f"-F{i}") for i in g]):
        ax = fig.add_subplot(1, len(g) + 1, j + 1)
        a = np.clip(img[..., 3:4], 0, 1)
        ax.imshow(np.clip(img[..., :3] + 1.0 - a, 0, 1))
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    figs.append(("gallery", "Bodies without a feature (replicate 0)", "The final body of the causal test, intact "
                 "and with each of the features of largest effect removed.", fig))
    return figs


def preflight(settings: FeaturesSettings):
    """Load the model (a bad name: one NCAError, before anything is written)."""
    import nca

    return nca.load_model(settings.model)


def run_with_progress(settings: FeaturesSettings, quiet: bool = False, model=None) -> FeaturesResult:
    """``run`` with a progress bar on stderr (none with quiet)."""
    import sys

    from tqdm import tqdm

    t_start = time.time()
    model = preflight(settings) if model is None else model
    bar = tqdm(total=4 + 1 + 2 * settings.sae.n_features, file=sys.stderr, desc="features", disable=quiet)
    try:
        return run(settings, progress=bar.update, model=model, t_start=t_start)
    finally:
        bar.close()


def write(result: FeaturesResult, out: Path) -> None:
    """report.json, index.html and the PNGs into ``out``, each written atomically."""
    from nca.checkpoint import atomic_write_bytes

    from analysis.reports.html import esc, report_files, table

    rep = result.report
    intro = (f"<p><code>{esc(rep['command'])}</code><br>Ran in {rep['timing_s']:.0f} s.</p>"
             + "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in summary_lines(result)) + "</ul>"
             + table(["feature", "frequency", "effect", "random direction", "excess", "specific"], result.rows))
    for name, data in report_files(f"Sparse features: {rep['model']}", intro, dict(rep), result.figures).items():
        atomic_write_bytes(Path(out) / name, data)


def summary_lines(result: FeaturesResult) -> list[str]:
    """Reconstruction, sparsity and dead features beside the controls; specific features."""
    from analysis.stats import fmt_ci

    rep = result.report
    lines = []
    for name, sc in (("model", rep["reconstruction"]["model"]), ("untrained", rep["reconstruction"]["untrained"])):
        if "cells" not in sc:
            lines.append(f"{name}: no control ({sc.get('reason')})")
            continue
        c, sh = sc["cells"], sc["shuffled"]
        lines.append(f"{name}: FVE {fmt_ci(c['fve'], 3)}, shuffled {fmt_ci(sh['fve'], 3)}, gain {fmt_ci(sc['gain'], 3)}; "
                     f"PCA at L0 {fmt_ci(c['pca_fve'], 3)}; L0 {fmt_ci(c['l0'])}; dead {fmt_ci(c['dead'])} "
                     f"({sc['n_train_cells']} train / {sc['n_test_cells']} held-out cells)")
    sp = rep["specific"]
    lines.append(f"specific features (effect above the norm-matched random direction): {sp['count']} of "
                 f"{len(rep['features'])}, rate {fmt_ci(sp['rate'])}; below it: {sp['below_control']}")
    top = rep["order_by_effect"][:3]
    lines.append("largest effects: " + "; ".join(
        f"F{i} {fmt_ci(rep['features'][i]['effect'], 3)} vs random {fmt_ci(rep['features'][i]['control'], 3)}"
        for i in top))
    return lines
