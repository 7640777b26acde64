"""Training dynamics: the measures of a model at each checkpoint kept along training.

``nca.train.train`` keeps the params at log-spaced steps (``Config.keep_checkpoints="log"``:
``run_dir/checkpoints/step_000100.msgpack``). For each kept checkpoint ``measure_checkpoint``
grows the model from the seed and measures:

* **loss** after ``steps`` (the growth loss) and after ``long_steps`` (persistence), MSE of
  the RGBA as seen (clipped) to the target;
* **PCA/axis measures** of the hidden channels (``analysis.pca`` + ``analysis.dissect``, the
  PCA fitted on this checkpoint's own states at steps/2 and steps): the kinds of the top k
  components, how many are axial, the largest directional and radial associations;
* **knockout effects** of every hidden channel in growth (``analysis.knockouts``), and with
  ``pairs`` the redundant pairs and mean epistasis.

Knockout effects are NaN while the intact model has not grown a body (reference loss above
half the empty-grid loss: nothing to knock out), PCA measures while fewer than 10 cells live.

``phase_change`` and ``onset`` turn the per-checkpoint series into the answers: where the loss
drops most between consecutive kept checkpoints (a sharp, grokking-like transition puts most
of the total drop in one interval) and from which checkpoint on a property holds.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations

import jax
import numpy as np

from nca.api import LoadedModel
from nca.model import seed_state, to_rgba

from . import knockouts as K
from .axes import AxisThresholds, alive_of
from .compare import emergence_step
from .dissect import describe_body
from .pca import fit_cell_pca, min_cells, pc_maps
from .rollouts import grow_states

AXIAL = ("along-axis", "across-axis")


def measure_checkpoint(model: LoadedModel, params, target, key: jax.Array, grid: int, steps: int,
                       long_steps: int, n_components: int = 4, pairs: bool = False, chunk: int = 16,
                       thresholds: AxisThresholds = AxisThresholds(), progress=None) -> dict:
    """All measures of one checkpoint (``params`` of ``model``'s architecture). JSON-ready."""
    m = replace(model, params=params)
    cfg = m.model_config
    thr = cfg.alive_threshold
    states = grow_states(m, long_steps, key, size=grid)[:, 0]  # [T+1, H, W, C]
    target = np.asarray(target)
    empty = K.empty_loss(target)

    def loss(x):
        return float(np.mean(np.square(np.asarray(to_rgba(x)) - target)))

    out = {"loss": loss(states[steps]), "loss_long": loss(states[long_steps]),
           "n_alive": int((states[steps, ..., 3] > thr).sum())}
    # PCA / axis measures
    fit = sorted({max(1, steps // 2), steps})
    alive = alive_of(states[fit, ..., 3], thr)
    out["pca"] = None
    if alive.sum(axis=(1, 2)).min() >= min_cells(n_components):
        pca = fit_cell_pca(states[fit, ..., 4:], alive, n_components)
        body = describe_body(pc_maps(pca, states[steps, ..., 4:], alive[-1]), states[steps, ..., 3],
                             pca.explained_variance_ratio, thr, thresholds)
        comps = body["components"]
        out["pca"] = {"explained_variance_ratio": pca.explained_variance_ratio.tolist(),
                      "kinds": [c["kind"] for c in comps],
                      "association": [c["association"] for c in comps],
                      "radial_association": [c["radial_association"] for c in comps],
                      "n_axial": sum(c["kind"] in AXIAL for c in comps),
                      "n_radial": sum(c["kind"] == "radial" for c in comps),
                      "max_association": max(c["association"] for c in comps),
                      "max_abs_radial": max(abs(c["radial_association"]) for c in comps)}
    # knockouts (growth condition)
    channels = list(range(4, cfg.channels))
    sets = K.singles_and_pairs(channels) if pairs else [(c,) for c in channels]
    abl = K.none_ablation(cfg.channels) + K.channel_ablations(sets, cfg.channels)
    seed = np.asarray(seed_state(grid, grid, cfg, batch=1))
    losses, _ = K.ablation_losses(params, cfg, K.Start("growth", seed, 0, steps), key, target, abl, chunk, progress)
    mean = losses.mean(1)
    ref = float(mean[0])
    grown = ref <= 0.5 * empty
    eff = K.normalised_effect(mean[1:], ref, empty) if grown else np.full(len(sets), np.nan)
    n = len(channels)
    ko = {"reference_loss": ref, "grown": bool(grown), "channels": channels, "effect": eff[:n].tolist(),
          "essential_channels": int((eff[:n] >= K.ESSENTIAL).sum()) if grown else None,
          "mean_effect": float(np.mean(eff[:n])) if grown else None}
    if pairs:
        pe = {p: float(e) for p, e in zip(combinations(channels, 2), eff[n:])}
        ko["pair_effect"] = eff[n:].tolist()
        if grown:
            single = {c: float(eff[i]) for i, c in enumerate(channels)}
            epi = K.epistasis(eff[:n], pe, {c: i for i, c in enumerate(channels)})
            ko["redundant_pairs"] = len(K.redundant_pairs(single, pe))
            ko["mean_epistasis"] = float(np.nanmean(epi[np.triu_indices(n, 1)]))
        else:
            ko["redundant_pairs"], ko["mean_epistasis"] = None, None
    out["knockouts"] = ko
    return out


def knockout_rollouts(channels: int, pairs: bool) -> int:
    """Rollouts ``measure_checkpoint`` runs for its knockouts (for progress bars)."""
    n = channels - 4
    return 1 + n + (n * (n - 1) // 2 if pairs else 0)


def phase_change(steps, loss) -> dict | None:
    """The interval between consecutive checkpoints where log10(loss) drops most.

    -> {"from_step", "to_step", "drop_log10", "share_of_total_drop"} (share: that drop over
    the total drop from the first to the lowest loss; near 1 = one sharp transition)."""
    steps = np.asarray(steps)
    lg = np.log10(np.maximum(np.asarray(loss, float), 1e-12))
    if len(lg) < 2:
        return None
    drops = lg[:-1] - lg[1:]
    i = int(np.argmax(drops))
    total = lg[0] - lg.min()
    return {"from_step": int(steps[i]), "to_step": int(steps[i + 1]), "drop_log10": float(drops[i]),
            "share_of_total_drop": float(drops[i] / total) if total > 0 else None}


def onset(steps, holds) -> int | None:
    """First checkpoint step from which ``holds`` (bools per checkpoint) stays true to the end."""
    return emergence_step(steps, ["yes" if h else "no" for h in holds], "yes") if len(holds) and holds[-1] else None


def series(checkpoints: list[dict]) -> dict:
    """Per-checkpoint lists of the scalar measures (NaN where not measurable) and the onsets.

    checkpoints: [{"step", **measure_checkpoint(...)}] in step order."""
    steps = [c["step"] for c in checkpoints]

    def col(f):
        vals = []
        for c in checkpoints:
            try:
                v = f(c)
            except (TypeError, KeyError):
                v = None
            vals.append(float("nan") if v is None else float(v))
        return vals

    s = {"steps": steps,
         "loss": col(lambda c: c["loss"]), "loss_long": col(lambda c: c["loss_long"]),
         "n_axial": col(lambda c: c["pca"]["n_axial"]), "n_radial": col(lambda c: c["pca"]["n_radial"]),
         "max_association": col(lambda c: c["pca"]["max_association"]),
         "max_abs_radial": col(lambda c: c["pca"]["max_abs_radial"]),
         "pc1_variance": col(lambda c: c["pca"]["explained_variance_ratio"][0]),
         "essential_channels": col(lambda c: c["knockouts"]["essential_channels"]),
         "mean_effect": col(lambda c: c["knockouts"]["mean_effect"])}
    if "redundant_pairs" in checkpoints[-1]["knockouts"]:
        s["redundant_pairs"] = col(lambda c: c["knockouts"]["redundant_pairs"])
        s["mean_epistasis"] = col(lambda c: c["knockouts"]["mean_epistasis"])
    s["phase_change"] = phase_change(steps, s["loss"])
    s["onset"] = {
        "grown": onset(steps, [c["knockouts"]["grown"] for c in checkpoints]),
        "axial_component": onset(steps, [v >= 1 for v in s["n_axial"]]),
        "radial_component": onset(steps, [v >= 1 for v in s["n_radial"]]),
    }
    if "redundant_pairs" in s:
        s["onset"]["redundant_pair"] = onset(steps, [v >= 1 for v in s["redundant_pairs"]])
    return s
