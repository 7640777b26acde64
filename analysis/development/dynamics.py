"""Training dynamics: the measures of a model at each checkpoint kept along training.

``nca.train.train`` keeps the params at log-spaced steps (``Config.keep_checkpoints="log"``:
``run_dir/checkpoints/step_000100.msgpack``). For each kept checkpoint ``measure_checkpoint``
grows the model from the seed and measures:

* **loss** after ``steps`` (the growth loss) and after ``long_steps`` (persistence), MSE of
  the RGBA as seen (clipped) to the target;
* **PCA/axis measures** of the hidden channels (``analysis.representation.pca`` + ``analysis.representation.dissect``, the
  PCA fitted on this checkpoint's own states at steps/2 and steps): the kinds of the top k
  components, how many are axial, the largest directional and radial associations;
* **knockout effects** of every hidden channel in growth (``analysis.causal.knockouts``), and with
  ``pairs`` the redundant pairs and mean epistasis.

Knockout effects are NaN while the intact model has not grown a body (reference loss above
half the empty-grid loss: nothing to knock out), PCA measures while fewer than 10 cells live.

``phase_change`` and ``onset`` turn the per-checkpoint series into the answers: where the loss
drops most between consecutive kept checkpoints (a sharp, grokking-like transition puts most
of the total drop in one interval) and from which checkpoint on a property holds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import combinations

import jax
import numpy as np

from nca.api import LoadedModel
from nca.model import seed_state, to_device, to_rgba

from analysis.causal import knockouts as K
from analysis.representation.axes import AxisThresholds, alive_of
from analysis.representation.compare import emergence_step
from analysis.representation.dissect import describe_body
from analysis.representation.pca import fit_cell_pca, min_cells, pc_maps
from analysis.rollouts import grow_states, image_positions

AXIAL = ("along-axis", "across-axis")


def measure_checkpoint(model: LoadedModel, params, target, key: jax.Array, grid: int, steps: int,
                       long_steps: int, n_components: int = 4, pairs: bool = False, chunk: int = 16,
                       thresholds: AxisThresholds = AxisThresholds(), progress=None, knockouts: bool = True) -> dict:
    """All measures of one checkpoint (``params`` of ``model``'s architecture). JSON-ready.

    knockouts=False skips the channel knockouts (``knockouts`` then holds only ``grown``,
    from the growth loss: at most half the empty-grid loss, and None effects)."""
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
    if not knockouts:
        out["knockouts"] = {"grown": bool(out["loss"] <= 0.5 * empty), "essential_channels": None, "mean_effect": None,
                            "skipped": True}
        return out
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


# --------------------------------------------------------------------------- transitions
# ``phase_change`` above cannot tell a smooth curve from a sharp drop on log-spaced
# checkpoints (issue 15: 0.25 for a smooth exponential, 0.36 for an 80 % sharp drop).
# ``detect_transitions`` asks the question as a model comparison on the dense loss curve
# (metrics.csv, one row per training step): is log10(loss) vs log10(step) better described by
# a smooth background plus a step than by the smooth background alone, and if so, is the
# step *sharp*?
#
# * background: a cubic regression spline in log10(step) with knots every ``knot_spacing``
#   decades (a smooth curve that follows exponentials, power laws, floors);
# * a step: h * logistic((x - x0) / w), location x0, size h and width w (logistic scale,
#   decades of training steps) fitted, w over a grid from sharper than one step to gradual
#   (``widths``);
# * a step is *supported* only when at least ``support_points`` data points and at least
#   ``support_spans`` of its own 10-90 % spans lie on each side of that span (issue 23: a
#   step in the last few points is an offset of those points, not a transition, and its
#   fitted size was unbounded: 354 decades), and its size is at most the range of the
#   (median-filtered) log-loss;
# * a step is accepted when it lowers the BIC (Schwarz 1978) by more than ``min_bic`` (10:
#   "very strong" on the scale of Kass & Raftery 1995) and drops the loss by at least
#   ``min_drop`` decades; then searched again with the accepted steps in the background
#   (up to ``max_transitions``; the forward selection of change points, cf. segmented
#   regression, Muggeo 2003, Stat. Med. 22:3055);
# * *sharp*, relative to the curve's own time scale: its 10-90 % span is at most
#   ``sharp_span`` (10 %) of the training step at its location, i.e. w <= log10(1 +
#   sharp_span) / (2 ln 9), and the data say so: the upper end of w's 95 % profile-likelihood
#   set is below that (a step whose width the data cannot pin down, or that takes 300 steps
#   at step 1000, is a *gradual* change, reported apart). In log-step the same relative
#   span is the same width, so "sharp" means the same early and late in training; the
#   background's knots (0.25 decades, a factor 1.8 in steps) are > 6 sharp spans apart, so
#   it cannot absorb a sharp step;
# * the likelihood is Gaussian on whitened residuals (each point divided by its local noise
#   scale, the running MAD of the background's residuals: early losses scatter more), and
#   the sample size is the *effective* one, n (1 - r1) / (1 + r1), r1 the lag-1
#   autocorrelation of the residuals (consecutive losses share the sample pool, and the
#   running median makes neighbours alike: counting them as independent would call noise a
#   transition);
# * the 95 % interval of the location is the profile-likelihood set (Hinkley 1970,
#   Biometrika 57:477): every x0 whose best fit (over w) is within chi2_1(0.95) of the best
#   on the n_eff log-likelihood scale, reported in steps.


@dataclass(frozen=True)
class TransitionSettings:
    """Transition detection (see the comment above). knot_spacing: decades between the
    background spline's knots; widths: logistic widths tried (decades of training steps);
    sharp_span: a step is sharp when its 10-90 % span is at most this fraction of its step;
    min_bic: BIC improvement required; min_drop: smallest |step| (decades of loss);
    max_transitions: at most this many steps (sharp or gradual) are fitted;
    support_points, support_spans: data points and 10-90 % spans required on each side of
    a step's span; min_points: fewer points -> no test (reported with a reason); level: of
    the location interval and of the width's upper bound; grid: candidate locations;
    median_window: log-losses are first passed through a running median of this many
    points (an edge-preserving smoother, Tukey 1977: a sharp step survives it, isolated
    spikes -- a batch of freshly damaged samples -- do not); noise_window: points of the
    running MAD that sets each point's noise scale.
    """

    knot_spacing: float = 0.25
    widths: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.004, 0.0065, 0.0094, 0.013, 0.018, 0.025, 0.035,
                                 0.05, 0.07)
    sharp_span: float = 0.1
    min_bic: float = 10.0
    min_drop: float = 0.1
    max_transitions: int = 3
    support_points: int = 25
    support_spans: float = 1.0
    min_points: int = 50
    level: float = 0.95
    grid: int = 300
    median_window: int = 5
    noise_window: int = 51

    @property
    def sharp_width(self) -> float:
        """The largest logistic width (decades) that is sharp: 10-90 % span = sharp_span."""
        return float(np.log10(1 + self.sharp_span) / (2 * np.log(9.0)))

    def definitions(self) -> dict:
        """The thresholds a result depends on, for the report."""
        return {"sharp": f"10-90% span <= {self.sharp_span:g} x the step at its location (logistic width <= "
                         f"{self.sharp_width:.4f} decades), upper end of the width's {self.level:.0%} profile set",
                "accepted": f"BIC lower by > {self.min_bic:g} with the effective n, drop >= {self.min_drop:g} decades",
                "support": f">= {self.support_points} points on each side of the 10-90% span, and a distance to "
                           f"each end >= {self.support_spans:g} x max(its span, a sharp span); size <= range of the "
                           "median-filtered log-loss",
                "background": f"cubic spline in log10(step), knots every {self.knot_spacing:g} decades",
                "median_window": self.median_window, "noise_window": self.noise_window}


def spline_basis(x: np.ndarray, spacing: float, max_basis: int) -> np.ndarray:
    """Cubic B-spline design matrix [n, m] over x [n] (ascending) with interior knots every
    ``spacing`` (fewer, evenly spread, when that would give more than ``max_basis`` columns)."""
    from scipy.interpolate import BSpline

    lo, hi = float(x.min()), float(x.max())
    n_int = max(0, int(np.floor((hi - lo) / spacing)) - 1)
    n_int = min(n_int, max(0, max_basis - 4))
    interior = np.linspace(lo, hi, n_int + 2)[1:-1]
    t = np.concatenate([[lo] * 4, interior, [hi] * 4])
    return BSpline.design_matrix(np.clip(x, lo, hi), t, 3).toarray()


def _logistic(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _supported(x: np.ndarray, centres: np.ndarray, widths: np.ndarray, s: TransitionSettings) -> np.ndarray:
    """[G, Wd] bool: a step at centres [G] of widths [Wd] has ``support_points`` points on
    each side of its 10-90 % span, and a distance to each end of the curve of at least
    ``support_spans`` times the larger of its own span and a sharp step's span there."""
    half = np.log(9.0) * widths  # half the 10-90 % span, decades
    a = centres[:, None] - half[None, :]
    b = centres[:, None] + half[None, :]
    before = np.searchsorted(x, a, side="left")
    after = len(x) - np.searchsorted(x, b, side="right")
    room = s.support_spans * np.maximum(2 * half[None, :], np.log10(1 + s.sharp_span))
    return ((before >= s.support_points) & (after >= s.support_points)
            & (a - x[0] >= room) & (x[-1] - b >= room))


def _fit_steps(x, centres, widths, wsd, q, ry, rss0, ok, bound):
    """Every candidate step [G x Wd] against the current background (orthonormal q, its
    residual ry, rss0): -> (gain [G*Wd], size h [G*Wd]); gain 0 where not ``ok`` [G, Wd]
    or where |h| exceeds ``bound`` (decades; the columns are whitened like the data)."""
    n = len(x)
    cols = _logistic((x[:, None, None] - centres[None, :, None]) / widths[None, None, :]).reshape(n, -1)
    cols = cols / wsd[:, None]
    rs = cols - q @ (q.T @ cols)  # step regressors after the background
    ss = (rs * rs).sum(0)
    good = ok.ravel() & (ss > 1e-9 * n)
    sdiv = np.where(good, ss, 1.0)
    proj = rs.T @ ry
    h = proj / sdiv
    good &= np.abs(h) <= bound
    gain = np.where(good, proj ** 2 / sdiv, 0.0)
    return gain, h, cols


def detect_transitions(steps, loss, settings: TransitionSettings = TransitionSettings()) -> dict:
    """Sharp transitions of a loss curve. steps, loss: [n] (steps >= 1 used).

    Returns {"transitions": [{"step", "interval": [lo, hi], "drop_log10", "width_decades",
    "width_upper_decades", "span_steps", "relative_span", "delta_bic", "interval_truncated"}],
    "gradual": [the same, for accepted steps that are not sharp], "n", "n_effective",
    "lag1_autocorrelation", "background_rms", "definitions", "reason"} (``reason``: None, or
    why nothing could be tested). A drop has drop_log10 > 0; span_steps: the 10-90 % span
    of the fitted width, in steps; relative_span: that over the step."""
    from scipy.ndimage import median_filter
    from scipy.stats import chi2

    s = np.asarray(steps, np.float64)
    lv = np.asarray(loss, np.float64)
    ok = (s >= 1) & np.isfinite(lv) & (lv > 0)
    x, y = np.log10(s[ok]), np.log10(lv[ok])
    order = np.argsort(x)
    x, y = x[order], y[order]
    s_sorted = s[ok][order]  # the steps themselves (10 ** x rounds 700 to 700.0000000000001)
    n = len(x)
    out = {"transitions": [], "gradual": [], "n": n, "n_effective": None, "lag1_autocorrelation": None,
           "background_rms": None, "definitions": settings.definitions(), "reason": None}
    if n < settings.min_points:
        out["reason"] = (f"{n} loss points: too few to tell a sharp transition from a smooth curve "
                         f"(need {settings.min_points}; use the dense metrics.csv curve)")
        return out
    y_raw = y
    if settings.median_window > 1:
        y = median_filter(y, size=settings.median_window, mode="nearest")
    bound = float(y.max() - y.min())  # no step can be larger than the data's range
    base = spline_basis(x, settings.knot_spacing, max(4, n // 5))
    widths = np.asarray(settings.widths, float)
    centres = np.linspace(x[0], x[-1], settings.grid)
    ok_grid = _supported(x, centres, widths, settings)
    if not ok_grid.any():
        out["reason"] = "too few points away from the ends of the curve for a supported step"
        return out
    # heteroscedastic noise: early training losses scatter far more than late ones, and one
    # global variance would let an early burst of spikes pass for a step. Each point is
    # weighted by its local noise scale, the running MAD (window ``noise_window``) of the
    # *raw* log-losses' residuals from the smooth background (weighted least squares; the
    # BIC and the intervals are computed on the whitened residuals). Not of the median-
    # filtered ones: a running median has runs of equal values, whose MAD can be 10x too
    # small, and a step fitted where the weights are inflated was a false detection
    # (issue 23). Floored at 1/3 of the median scale for the same reason.
    q0, _ = np.linalg.qr(base)
    r0 = y_raw - q0 @ (q0.T @ y_raw)
    mad = median_filter(np.abs(r0 - median_filter(r0, size=settings.noise_window, mode="nearest")),
                        size=settings.noise_window, mode="nearest") * 1.4826
    floor = (np.median(mad) if np.median(mad) > 0 else 1.0) / 3
    wsd = np.maximum(mad, floor)
    yw = y / wsd
    design = base / wsd[:, None]
    crit = chi2.ppf(settings.level, 1)
    dx = centres[1] - centres[0]
    for _ in range(settings.max_transitions):
        q, _r = np.linalg.qr(design)
        ry = yw - q @ (q.T @ yw)
        rss0 = float(ry @ ry)
        gain, h, cols0 = _fit_steps(x, centres, widths, wsd, q, ry, rss0, ok_grid, bound)
        best = int(np.argmax(gain))
        # the residuals' autocorrelation under the model being tested (background + the best
        # step): before the step is fitted, the step itself is in the residuals, makes them
        # look strongly correlated (r1 0.95) and cut n_eff to a handful of points
        c_best = cols0[:, best] - q @ (q.T @ cols0[:, best])
        ry1 = ry - h[best] * c_best if gain[best] > 0 else ry
        r1 = float(np.corrcoef(ry1[:-1], ry1[1:])[0, 1]) if ry1.std() > 0 else 0.0
        r1 = max(0.0, r1)
        n_eff = max(float(n) * (1 - r1) / (1 + r1), float(design.shape[1] + 4))
        if out["n_effective"] is None:
            out["n_effective"], out["lag1_autocorrelation"] = n_eff, r1
            out["background_rms"] = float(np.sqrt(np.mean(r0 ** 2)))
        if gain[best] <= 0:
            break
        # BIC with the effective sample size (3 extra parameters: h, x0, w)
        dbic = n_eff * np.log(rss0 / max(rss0 - gain[best], 1e-300)) - 3 * np.log(n_eff)
        if not (dbic > settings.min_bic and -h[best] >= settings.min_drop):
            break
        gi, _wi = divmod(best, len(widths))
        # profile likelihood of location and width on a 20x finer grid of locations around
        # the coarse optimum (+-10 coarse cells)
        fine = np.arange(centres[max(0, gi - 10)], centres[min(len(centres) - 1, gi + 10)] + dx / 40, dx / 20)
        ok_f = _supported(x, fine, widths, settings)
        gf, hf, cols = _fit_steps(x, fine, widths, wsd, q, ry, rss0, ok_f, bound)
        bf = int(np.argmax(gf))
        rss_f = np.where(gf > 0, rss0 - gf, np.inf).reshape(len(fine), len(widths))
        rmin = rss0 - gf[bf]
        dev = n_eff * np.log(rss_f / rmin)  # -2 log-likelihood ratio to the best fit
        fi, wi = divmod(bf, len(widths))
        inside = dev.min(1) <= crit  # location profile (width profiled out)
        a = b = fi  # the contiguous run of accepted locations around the best one
        while a > 0 and inside[a - 1]:
            a -= 1
        while b < len(fine) - 1 and inside[b + 1]:
            b += 1
        # a step narrower than the sampling can sit anywhere between two samples: the
        # interval reaches at least the data points on either side of the set
        lo_i = max(0, int(np.searchsorted(x, fine[a], side="left")) - 1)
        hi_i = min(n - 1, int(np.searchsorted(x, fine[b], side="right")))
        # width profile over the accepted locations. Wider steps are tried there even where
        # they would lack support (only the centre needs support_points on each side):
        # near an end, support alone would rule out every gradual alternative and leave a
        # misfit of the background to be called sharp by default
        centre_ok = ((np.searchsorted(x, fine[a:b + 1]) >= settings.support_points)
                     & (n - np.searchsorted(x, fine[a:b + 1]) >= settings.support_points))
        gl, _, _ = _fit_steps(x, fine[a:b + 1], widths, wsd, q, ry, rss0,
                              np.broadcast_to(centre_ok[:, None], (b + 1 - a, len(widths))), bound)
        dev_w = n_eff * np.log(np.where(gl > 0, rss0 - gl, np.inf).reshape(b + 1 - a, len(widths)) / rmin)
        w_in = dev_w.min(0) <= crit
        w_up = float(widths[w_in].max())
        sharp = w_up <= settings.sharp_width * (1 + 1e-9)
        step = float(10 ** fine[fi])
        span = 10 ** (fine[fi] + np.log(9.0) * widths[wi]) - 10 ** (fine[fi] - np.log(9.0) * widths[wi])
        interval = [float(min(10 ** fine[a], s_sorted[lo_i])), float(max(10 ** fine[b], s_sorted[hi_i]))]
        truncated = (a == 0 and fine[0] > centres[0]) or (b == len(fine) - 1 and fine[-1] < centres[-1])
        (out["transitions"] if sharp else out["gradual"]).append({
            "step": step, "interval": interval,
            # drop_log10: the step's size in log10 units (columns and data were whitened alike)
            "drop_log10": float(-hf[bf]), "width_decades": float(widths[wi]), "width_upper_decades": w_up,
            "span_steps": float(span), "relative_span": float(span / step), "delta_bic": float(dbic),
            "interval_truncated": bool(truncated)})
        design = np.column_stack([design, cols[:, bf]])
    out["transitions"].sort(key=lambda t: t["step"])
    out["gradual"].sort(key=lambda t: t["step"])
    return out


def onset_interval(steps, holds) -> dict | None:
    """When a property measured at kept checkpoints appears for good: {"step": the first
    kept step from which it holds to the end, "after": the last kept step before it where
    it did not (the onset lies in (after, step]; None when it held from the first)}.
    None when it does not hold at the last checkpoint."""
    first = onset(steps, holds)
    if first is None:
        return None
    i = list(steps).index(first)
    return {"step": int(first), "after": int(steps[i - 1]) if i > 0 else None}


# --------------------------------------------------------------------------- development along training
# Measures of issue 15 per kept checkpoint, beside ``measure_checkpoint``'s: the weights, the
# grokking analogue (persistence is ``loss_long``; regeneration after a cut here), where the
# cells know they are (positional probes), and each final component tracked in a common
# basis (the final model's PCA).

STREAM_DEV_GROW = 31
STREAM_DEV_REGROW = 32
STREAM_DEV_PROBE = 33
STREAM_DEV_NULL = 34
APPEAR_CORR = 0.8  # a final component "is there" when a checkpoint PC map correlates this well with it


def weight_stats(params, init) -> dict:
    """{"weight_norm": ||theta||, "distance_from_init": ||theta - theta_0||} over all arrays."""
    leaves = jax.tree.leaves(params)
    init_leaves = jax.tree.leaves(init)
    sq = sum(float(np.sum(np.square(np.asarray(p, np.float64)))) for p in leaves)
    dd = sum(float(np.sum(np.square(np.asarray(p, np.float64) - np.asarray(q, np.float64))))
             for p, q in zip(leaves, init_leaves))
    return {"weight_norm": float(np.sqrt(sq)), "distance_from_init": float(np.sqrt(dd))}


@dataclass(frozen=True)
class DevelopmentAlongTraining:
    """steps: growth steps (the body measured); regrow: steps of regrowth after the cut;
    cut: the cut (``nca.damage.CUTS``); replicates: rollouts (fire masks) for the probes
    and the regeneration loss; n_components: PCs tracked; max_cells: per replicate for the
    probes."""

    steps: int = 64
    regrow: int = 64
    cut: str = "left"
    replicates: int = 3
    n_components: int = 4
    max_cells: int = 600


def final_reference(states: np.ndarray, threshold: float, n_components: int) -> dict | None:
    """The final model's PCA and maps, the common basis. states: [B, H, W, C] at ``steps``.
    None when the final body is too small for a PCA."""
    from analysis.representation.pca import fit_cell_pca, min_cells, pc_maps

    alive = states[..., 3] > threshold
    if alive.sum() < min_cells(n_components):
        return None
    pca = fit_cell_pca(states[..., 4:], alive, n_components)
    return {"pca": pca, "maps": pc_maps(pca, states[0, ..., 4:], alive[0]), "alive": alive[0]}


def _map_corr(a: np.ndarray, b: np.ndarray, common: np.ndarray) -> np.ndarray:
    """|Pearson r| between every map of a [H, W, k] and of b [H, W, k'] over common cells -> [k, k']."""
    xa, xb = a[common], b[common]
    xa = xa - xa.mean(0)
    xb = xb - xb.mean(0)
    na, nb = np.linalg.norm(xa, axis=0), np.linalg.norm(xb, axis=0)
    c = (xa.T @ xb) / np.outer(np.where(na > 0, na, 1), np.where(nb > 0, nb, 1))
    return np.abs(c)


def measure_development(model: LoadedModel, params, init_params_, target, key: jax.Array, grid: int,
                        s: DevelopmentAlongTraining, reference: dict | None, null=None) -> dict:
    """Issue 15's measures of one checkpoint (JSON-ready apart from ``states``, popped by
    the caller): weights, regeneration loss, positional probes, and, given the final
    model's ``reference``, the tracking of each final component. null: an
    ``analysis.representation.axis_null.NullSettings`` to test each final component's map on this
    checkpoint's body (the final loading applied to its states) against the spatial null
    of issue 13 (``tracking.p_value``, ``radial_p_value``, ``significant``: Holm-adjusted
    p < 0.05 over the k components, axial or radial); None: not tested."""
    from nca.damage import Cut

    from analysis.development import positional as Pz
    from analysis.causal.knockouts import advance
    from analysis.representation.pca import fit_cell_pca, min_cells, pc_maps

    m = replace(model, params=params)
    cfg = m.model_config
    thr = cfg.alive_threshold
    out = weight_stats(params, init_params_)
    x0 = np.asarray(seed_state(grid, grid, cfg, batch=s.replicates))
    kg = jax.random.fold_in(key, STREAM_DEV_GROW)
    grown = np.asarray(advance(params, to_device(x0), kg, s.steps, cfg))  # [B, H, W, C]
    target = np.asarray(target)

    def loss(x):
        return np.mean(np.square(np.clip(x[..., :4], 0, 1) - target), axis=(-3, -2, -1))

    keep = 1.0 - Cut(s.steps, s.cut).mask(grid, grid).astype(np.float32)
    regrown = np.asarray(advance(params, to_device(grown * keep[None, :, :, None]),
                                 jax.random.fold_in(key, STREAM_DEV_REGROW), s.regrow, cfg, t0=s.steps))
    out["loss_regen"] = float(loss(regrown).mean())
    out["loss_grown"] = float(loss(grown).mean())
    alive = grown[..., 3] > thr
    n = alive.sum((1, 2))
    out["states"] = grown
    # positional probes (the final body's frame is this checkpoint's own grown body)
    if n.min() < 20:
        out["probe"] = {"null_reason": f"fewer than 20 alive cells in a replicate (min {int(n.min())}): no body"}
    else:
        pos = image_positions((grid, grid), cfg)  # on the hex grid the drawn body's
        frame = Pz.reference_frame(grown[..., 3], thr, pos)
        cg = Pz.coordinate_grid((grid, grid), frame, pos)
        kp = jax.random.fold_in(key, STREAM_DEV_PROBE)
        f, y = zip(*[Pz.cells_at(grown[b, ..., 4:], alive[b], cg, s.max_cells, jax.random.fold_in(kp, b))
                     for b in range(s.replicates)])
        out["probe"] = Pz.summarise_probes(Pz.probe_scores(list(f), list(y), kp))
    # components in the common basis
    if reference is None:
        out["tracking"] = {"null_reason": "the final model has no body to fit a PCA on"}
    elif alive.sum() < min_cells(s.n_components):
        out["tracking"] = {"null_reason": "no body at this checkpoint"}
    else:
        from analysis.representation.compare import loading_angles_deg, matched_cosines

        own = fit_cell_pca(grown[..., 4:], alive, s.n_components)
        common = alive[0] & reference["alive"]
        if common.sum() < 10:
            out["tracking"] = {"null_reason": "fewer than 10 cells alive both here and in the final body"}
        else:
            own_maps = pc_maps(own, grown[0, ..., 4:], alive[0])
            proj_maps = pc_maps(reference["pca"], grown[0, ..., 4:], alive[0])  # final loadings, these states
            corr = _map_corr(reference["maps"], own_maps, common)  # [k_final, k_own]
            proj = _map_corr(reference["maps"], proj_maps, common)
            out["tracking"] = {
                "map_corr": corr.max(1).tolist(),  # per final component: best own-PC map |r|
                "common_basis_map_corr": np.diag(proj).tolist(),  # final loading j on these states vs final map j
                "loading_cos": matched_cosines(reference["pca"].components, own.components).tolist(),
                "principal_angles_deg": loading_angles_deg(reference["pca"].components, own.components).tolist(),
                "n_common_cells": int(common.sum())}
            if null is not None:
                out["tracking"].update(_null_test(proj_maps, alive[0], grown[0, ..., 3], thr, null, key))
    return out


def _null_test(maps: np.ndarray, alive: np.ndarray, alpha: np.ndarray, threshold: float, settings, key) -> dict:
    """Spatial-null p-values (analysis.representation.axis_null) of k maps [H, W, k] on one body."""
    from analysis.representation.axes import body_frame, view_coords
    from analysis.representation.axis_null import BodyNull, holm

    if alive.sum() < settings.min_cells:
        return {"p_value": None, "radial_p_value": None, "significant": None,
                "null_reason": f"fewer than {settings.min_cells} alive cells for the spatial null"}
    fr = body_frame(alpha, threshold)
    centre = view_coords([fr.centroid_rc[0]], [fr.centroid_rc[1]])[0]
    seed = int(np.asarray(jax.random.key_data(jax.random.fold_in(key, STREAM_DEV_NULL))).ravel()[-1])
    t = BodyNull(alive, centre, settings, seed=seed).test(maps[alive])
    sig = (holm(np.asarray(t["p_value"])) < 0.05) | (holm(np.asarray(t["radial_p_value"])) < 0.05)
    return {"p_value": np.asarray(t["p_value"]).tolist(), "radial_p_value": np.asarray(t["radial_p_value"]).tolist(),
            "significant": sig.tolist()}


def development_series(checkpoints: list[dict], n_components: int, grown=None) -> dict:
    """Per-checkpoint lists of the issue-15 measures and their onsets (``onset_interval``).

    checkpoints: [{"step", "development": measure_development(...)}] in step order;
    grown: per checkpoint whether it grows a body (default: all True). Position is only
    said to be decoded where a body grows (a probe on an ungrown blob decodes the blob's
    own geometry, not the body's)."""
    steps = [c["step"] for c in checkpoints]

    def col(f):
        vals = []
        for c in checkpoints:
            try:
                v = f(c["development"])
            except (TypeError, KeyError, IndexError):
                v = None
            vals.append(float("nan") if v is None else float(v))
        return vals

    s = {"steps": steps,
         "weight_norm": col(lambda d: d["weight_norm"]), "distance_from_init": col(lambda d: d["distance_from_init"]),
         "loss_grown": col(lambda d: d["loss_grown"]), "loss_regen": col(lambda d: d["loss_regen"])}
    for c in ("along", "across", "radius"):
        s[f"probe_knn_r2_{c}"] = col(lambda d, c=c: d["probe"]["knn"][c]["r2"]["mean"])
        s[f"probe_ridge_r2_{c}"] = col(lambda d, c=c: d["probe"]["ridge"][c]["r2"]["mean"])
        s[f"probe_shuffled_r2_{c}"] = col(lambda d, c=c: d["probe"]["shuffled_knn"][c]["r2"]["mean"])
        s[f"probe_bits_{c}"] = col(lambda d, c=c: d["probe"]["knn"][c]["bits"]["mean"])
    for j in range(n_components):
        s[f"pc{j + 1}_map_corr"] = col(lambda d, j=j: d["tracking"]["map_corr"][j])
        s[f"pc{j + 1}_common_basis_map_corr"] = col(lambda d, j=j: d["tracking"]["common_basis_map_corr"][j])
        s[f"pc{j + 1}_loading_cos"] = col(lambda d, j=j: d["tracking"]["loading_cos"][j])
        s[f"pc{j + 1}_significant"] = col(lambda d, j=j: d["tracking"]["significant"][j])
    s["onset"] = {
        "decodes_position": onset_interval(steps, [bool(g) and v > 0.5 for g, v in
                                                   zip(grown if grown is not None else [True] * len(steps),
                                                       s["probe_knn_r2_along"])]),
        **{f"pc{j + 1}_appears": onset_interval(steps, [v >= APPEAR_CORR for v in s[f"pc{j + 1}_map_corr"]])
           for j in range(n_components)}}
    if any(np.isfinite(s[f"pc{j + 1}_significant"]).any() for j in range(n_components)):
        for j in range(n_components):
            s["onset"][f"pc{j + 1}_significant"] = onset_interval(steps, [v == 1 for v in s[f"pc{j + 1}_significant"]])
    return s
