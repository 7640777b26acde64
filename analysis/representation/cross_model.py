"""Is a body-axis gradient shared by independently trained models? A combined test.

Pure NumPy. Why (issue 23, item 3): from one body, the along-axis test of the spatial null
(``analysis.representation.axis_null``) cannot find a head-tail ramp below about 8x the
texture, because a random field as large as the body is such a ramp: the surrogates that
match the map's variogram contain broad fields, and those point along the axis as often as a
ramp does. What a broad random field cannot do is point the *same way* in independently
trained models. A gradient shared by the models can, so the evidence is in the signs, and the
test below combines them.

**Combined surrogate test** (the primary definition). Each model m contributes one map on
its own body. Its long axis is oriented the same way in every model (``reference_deg``: the
axis end within 90 deg of it; by default the first model's axis), and the map's sign, which
a PC does not have, is fixed by a rule applied identically to the map and to every surrogate
(``orient="core"``: the core high, i.e. radial Spearman <= 0; ``"none"``: the sign as given,
for maps that have one, such as a visible channel). The statistic is the mean over models of
the signed Spearman association with the oriented axis (``along``) or its perpendicular
(``across``). Its null: each model's surrogates from its own fitted variogram mixture (the
spatial null's, drawn from the model's own noise stream, so models are independent), one
surrogate per model per draw, the same statistic on each draw. p = (1 + #{|T*| >= |T|}) /
(1 + draws) (two-sided, the smallest p 1 / (draws + 1)), computed with the fitted mixtures,
with the Berger-Boos broader ones, as in the one-body test, and (round 15) with the wide ones;
the largest is the surrogate p.

**The wide mixture** (issue 23, round 15; ``BodyNull.wide_weights``): every fitted kernel's
variance moved to the kernel 2x broader in both directions, *past* the bank's broadest scale
(0.8 x the body's length), on a twin body whose bank reaches 2x further (its own noise stream).
The broader mixture is capped there, so for the fields that fit the broadest kernels the
Berger-Boos range is empty at the end that matters: a field correlated along the body beyond
the body's length varies only across it, its across-axis association piles up near +-1, and
the capped mixtures give it too little spread (on the persistent lizard's body, 160 maps of fields
correlated 4x longer along the body: sd 0.634 over the maps, 0.573 over the broader
mixtures' surrogates, 0.613 over the wide ones'). One body's test reads the tail, where they
agree; a mean over 4 models is judged by the spread, and the across-axis combined test called
such fields shared in 27/320 sets at nominal 5 % without it. The wide mixture only raises p (a
maximum over one more mixture), so every false-positive rate measured without it is an
upper bound with it; docs/validation/spatial_null.md has what it changed.

**The direction null** (issue 23, round 12). The surrogates are stationary fields; a model
whose map is a strong ramp pointing in its own direction is not one, and four such models beat
their surrogates along the axis in 8.5 % of sets at nominal 5 % (bench, below). So a second
null asks the confound's own question: is the mean association more than the same maps would
give if each model's gradient pointed in a direction unrelated to its body? Each draw turns
every model's least-squares plane (of its map's standardised ranks on the cell positions) to
its own uniformly random direction, keeping the plane's sd over the body and the residual in
place (``redirected_maps``; rotating the whole map, the spin test of Alexander-Bloch et al.
2018, NeuroImage 178:540, would move values off a body that is not a disc), and takes the same
statistic. A plane in a random direction is exchangeable with these draws, so the null is
exact for pure planes (tested). **The reported p is the larger of the surrogate p and the
direction p**: an intersection-union test (Berger 1982, Technometrics 24:295), at most nominal
wherever either null is. It could cost power: on an elongated body a ramp in most directions
is strongly associated with the long axis, so what a shared ramp adds over random directions
is mainly the sign and the closeness to the axis. On the lizard's body it cost none at half the
texture and more (below); on the tests' thinner ellipses, a shared ramp at 1x the texture
needs about 200 draws where the surrogates alone need 100.

Two other definitions, reported beside it (each answers a different question; a finding
should hold under the one that asks the reader's question):

* ``fisher_p``: Fisher's combination (Fisher 1925, *Statistical Methods for Research
  Workers*, sec. 21.1) of the models' own unsigned one-body p-values: -2 sum log p ~
  chi2(2M). "Does at least one model have an along-axis gradient beyond its null?" A
  gradient whose sign differs between models passes it; the shared-sign test does not.
* ``sign_flip_p``: the exact sign-flip test of the per-model signed associations (Fisher
  1935, the randomisation test; every one of the 2^M sign patterns): "are the signs more
  alike than chance, given the sizes?" Distribution-free, but its smallest p is 2 / 2^M
  (0.125 for 4 models, 0.0078 for 8).

Tried and rejected: dividing each model's association by its best association in any
direction (a "normalised" association: 1 for a clean ramp along the axis whatever its
strength), meant to stop models with strong ramps in their own random directions from beating
their surrogates by strength alone. It barely helped there (3/40 against 4/40 along, 4/40
each across, planted on the lizard's body), and it is fooled by a core-periphery map, which has little directional
structure of its own, so that the body's shape sets the ratio the same way in every model:
a radial map with no gradient called an across-axis gradient in 18/40 sets (the plain mean:
0/40). Also measured and not adopted (``statistic="t"``, kept as an option): the mean over its
standard error across models (studentized, the remedy when a null's spread is off by a
common factor; Hall & Wilson 1991, Biometrics 47:757). On the same sets and surrogates it was
no better where the mean is anti-conservative: fields correlated 4x longer along the body,
across 13/200 (mean 15/200) and along 7/200 (mean 1/200); random-direction ramps 19/200 along
and 11/200 across (mean 17/200 and 10/200, the same 200 sets); and it found a shared ramp at half the texture on a
two-scale texture in 7/20 sets against the mean's 9/20. The surrogates miss the shape of the
association's distribution there, not only its scale. docs/validation/spatial_null.md has the numbers.

Validated on planted data (tests/test_cross_model.py, ``python bench/dissection.py --only
cross_models``): fields with no gradient, independent per model, are called at most at the
nominal rate; a ramp shared by the models at a signal the one-body test misses is found;
ramps along the axis whose sign differs between models, and core-periphery maps, are not
called shared. Strong ramps (3x the texture) in a random direction per model: the surrogate
p alone calls them shared along the axis in 17/200 sets (8.5 % [5.0, 13.3]: anti-conservative;
across 10/200); the direction null alone in 53/1000 along (5.3 % [4.0, 6.9]) and 59/1000 across
(5.9 % [4.5, 7.5]), so the reported p in at most 53/1000 and 54/1000 (round 12; the same sets'
first 200 with both nulls: 15/200 and 9/200; ramps of one slope rather than one spread: at
most 42/1000 and 43/1000). Its power is the surrogates' at half the texture
and more (19/20 and 9/20 at 0.5x on the two textures, 20/20 at 1x). Fields correlated 4x
longer along the body were called shared across-axis gradients in 27/320 sets (8.4 % [5.6,
12.0]: anti-conservative there) before the wide mixture; with it (round 15,
the same sets) in 20/320 (6.2 % [3.9, 9.5]), and in 41/720 (5.7 % [4.1, 7.6]) with 400 more
sets: about nominal, within the 8 % bound; power unchanged. Read a
combined p near 0.05 beside the sign-flip p, which needs 6 or more models to reach 0.05.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from nca.errors import NCAError

from analysis.representation.axis_null import STREAM_DIRECTIONS, BodyNull, rank_scores

ORIENT = ("core", "none")
AXES = ("along", "across")
STATISTICS = ("mean", "t")


@dataclass(frozen=True)
class CombinedSettings:
    """draws: null draws of the combined statistic (one surrogate per model each; the
    smallest p is 1 / (draws + 1)); orient: how each map's sign is fixed (``ORIENT``; module
    doc); min_models: fewer models -> an error (two cannot agree by more than chance at any
    useful level of the sign-flip test, and the combination is the point); statistic: the
    combined statistic (``STATISTICS``): ``"mean"``, the mean signed association over models
    (the primary definition), or ``"t"``, that mean divided by its standard error over models
    (studentized; the same surrogates; module doc: measured, not better calibrated); wide:
    the surrogate p is also taken over each model's wide mixture (``BodyNull.wide_weights``:
    every kernel 2x broader past the bank's cap; module doc), False: the fitted and broader
    mixtures only (rounds 4-14)."""

    draws: int = 999
    orient: str = "core"
    min_models: int = 2
    statistic: str = "mean"
    wide: bool = True

    def __post_init__(self):
        from nca.errors import require_at_least

        require_at_least(self, ("draws",), 1, lambda name: f"CombinedSettings.{name}")
        require_at_least(self, ("min_models",), 2, lambda name: f"CombinedSettings.{name}")
        if self.orient not in ORIENT:
            raise NCAError(f"CombinedSettings.orient must be one of {', '.join(ORIENT)}, got {self.orient!r}")
        if self.statistic not in STATISTICS:
            raise NCAError(f"CombinedSettings.statistic must be one of {', '.join(STATISTICS)}, got {self.statistic!r}")


def oriented_axes(bodies: list[BodyNull], reference_deg: float | None = None) -> np.ndarray:
    """Each body's long axis as a direction (deg, image view) whose end lies within 90 deg of
    ``reference_deg`` (default: the first body's axis) -> [M]. The axes of a frame are lines
    (mod 180); a shared head-tail gradient needs the same end called "head" in every model."""
    axes = np.array([b.axis_deg for b in bodies], np.float64)
    ref = axes[0] if reference_deg is None else float(reference_deg)
    flip = np.cos(np.deg2rad(axes - ref)) < 0
    return np.mod(axes + 180.0 * flip, 360.0)


def _per_map(body: BodyNull, values: np.ndarray, axis_deg: float, orient: str) -> np.ndarray:
    """[2, k]: per map (columns of values [n, k]) its signed along and across associations
    (``BodyNull.signed_statistics``), each map's sign fixed by ``orient``."""
    radial, along, across = body.signed_statistics(values, axis_deg)
    sign = 1.0 if orient == "none" else np.where(radial > 0, -1.0, 1.0)  # "core": radial association <= 0
    return np.stack([along, across]) * sign


def redirected_maps(body: BodyNull, values: np.ndarray, count: int, component: int = 0) -> np.ndarray:
    """The direction null's draws of one map: its planar part turned to random directions.

    values: [n] one map at the body's alive cells -> [n, count]. The map's standardised
    ranks r (what the Spearman statistics see) are split by least squares
    on the centred cell positions into a plane X beta and a residual e; draw i is
    e + s_i X R(phi_i) beta, phi_i uniform on the circle (stream ``STREAM_DIRECTIONS``,
    ``component``, from the body's own seed and key), s_i the factor that keeps the plane's
    sd over the body (a ramp's share of the map is what a rank statistic sees; on an elongated
    body a turned plane of the same slope would have another share). The residual stays in
    place, so nothing moves off the body (why the spin test cannot be used here: the
    ``axis_null`` module doc)."""
    X = body.uv - body.uv.mean(0)  # [n, 2]
    r = rank_scores(np.asarray(values)[:, None])[:, 0]
    beta = np.linalg.lstsq(X, r, rcond=None)[0]  # [2]
    plane = X @ beta
    e = r - plane
    phi = body.rng(STREAM_DIRECTIONS, component).uniform(0.0, 2.0 * np.pi, count)
    c, s = np.cos(phi), np.sin(phi)
    turned = X @ np.stack([c * beta[0] - s * beta[1], s * beta[0] + c * beta[1]])  # [n, count]
    sd = turned.std(0)
    return e[:, None] + turned * np.where(sd > 0, plane.std() / np.where(sd > 0, sd, 1.0), 0.0)


def _direction_null(bodies: list[BodyNull], maps: list[np.ndarray], axes: np.ndarray,
                    settings: CombinedSettings, component: int) -> np.ndarray:
    """The combined statistic on ``settings.draws`` draws of the direction null -> [2, draws]:
    each draw turns every model's planar part to its own random direction (``redirected_maps``)."""
    return combined_statistic(np.stack([_per_map(b, redirected_maps(b, m, settings.draws, component), a, settings.orient)
                                        for b, m, a in zip(bodies, maps, axes)]), settings.statistic)


def _monte_carlo_p(null: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Two-sided Monte-Carlo p of observed [2] against null draws [2, B]: (1 + #{|T*| >= |T|}) / (1 + B)."""
    return (1.0 + (np.abs(null) >= np.abs(observed)[:, None] - 1e-12).sum(1)) / (1.0 + null.shape[1])


def direction_p(bodies: list[BodyNull], maps: list[np.ndarray], axes: np.ndarray,
                settings: CombinedSettings = CombinedSettings(), component: int = 0) -> np.ndarray:
    """The direction null's two-sided Monte-Carlo p of the combined statistic -> [2] (along,
    across). maps: M arrays [n_m], one map per body; axes: [M] oriented axes
    (``oriented_axes``). Each of ``settings.draws`` draws turns every model's planar part to
    its own random direction (``redirected_maps``) and takes the combined statistic; the null:
    each model's gradient points in a direction unrelated to its body's axis."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # small products: BLAS threads cost more than they save (BodyNull.test)
        obs = combined_statistic(np.stack([_per_map(b, m[:, None], a, settings.orient)[:, 0]
                                           for b, m, a in zip(bodies, maps, axes)]), settings.statistic)  # [2]
        return _monte_carlo_p(_direction_null(bodies, maps, axes, settings, component), obs)


def combined_statistic(x: np.ndarray, statistic: str = "mean") -> np.ndarray:
    """The combined statistic over models, axis 0 of x [M, ...] -> [...]: the mean, or
    (``"t"``) the mean over its standard error, mean / (sd / sqrt(M)) with sd's ddof 1 (models
    that agree exactly: sd 0, a t of +-inf, which every draw with sd > 0 falls short of)."""
    m = x.mean(0)
    if statistic == "mean":
        return m
    se = x.std(0, ddof=1) / np.sqrt(x.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(se > 0, m / np.where(se > 0, se, 1.0), np.where(m == 0, 0.0, np.sign(m) * np.inf))


def sign_flip_p(x: np.ndarray) -> float:
    """Exact two-sided sign-flip p-value of mean(x) over every one of the 2^M sign patterns
    (M <= 20). x: [M]."""
    x = np.asarray(x, np.float64)
    if len(x) > 20:
        raise NCAError(f"the exact sign-flip test takes at most 20 models, got {len(x)}")
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(x))))
    return float(np.mean(np.abs(signs @ x) >= abs(x.sum()) - 1e-12))


def fisher_p(p: np.ndarray) -> float:
    """Fisher's combination of independent p-values: P(chi2(2M) >= -2 sum log p). p: [M]."""
    from scipy.stats import chi2

    p = np.clip(np.asarray(p, np.float64), 1e-300, 1.0)
    return float(chi2.sf(-2.0 * np.log(p).sum(), 2 * len(p)))


def combined_axis_test(bodies: list[BodyNull], values: list[np.ndarray],
                       settings: CombinedSettings = CombinedSettings(),
                       reference_deg: float | None = None) -> dict:
    """Per component, is a gradient along (across) the body's long axis shared by the models?

    bodies: M ``BodyNull`` (one per independently trained model; each with its own
    (seed, key), so that their surrogates are independent); values: M arrays [n_m, k], the
    m-th model's k maps at its body's alive cells (component j of every model is combined:
    PCs matched by index). -> {"n_models", "draws", "min_p", "sign_flip_min_p", "orient",
    "axis_deg" [M] (oriented), "components": k dicts {axis: {"mean_signed", "per_model" [M],
    "p_value" (the larger of "p_surrogate" and "p_direction": module doc), "p_surrogate"
    (the largest of "p_fitted", "p_broader" and "p_wide"; the last None with
    ``settings.wide`` False), "p_direction", "fisher_p", "per_model_p" [M],
    "sign_flip_p"}}}.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # many small products (BodyNull.test)
        return _combined_axis_test(bodies, values, settings, reference_deg)


def _combined_axis_test(bodies, values, settings, reference_deg) -> dict:
    M = len(bodies)
    if M != len(values):
        raise NCAError(f"{M} bodies but {len(values)} value arrays")
    if M < settings.min_models:
        raise NCAError(f"a combined test needs at least {settings.min_models} models, got {M}")
    streams = [(b.seed, b.key) for b in bodies]
    if len(set(streams)) < M:
        raise NCAError("two bodies share a surrogate stream (seed, key): their nulls would not be independent; "
                       "give each model its own key")
    values = [np.asarray(v, np.float64) for v in values]
    ks = {v.shape[1] for v in values}
    if len(ks) != 1:
        raise NCAError(f"every model needs the same number of maps, got {sorted(ks)}")
    k = ks.pop()
    for b, v in zip(bodies, values):
        if v.shape[0] != b.n:
            raise NCAError(f"a value array has {v.shape[0]} cells, its body {b.n}")
    axes = oriented_axes(bodies, reference_deg)
    B = settings.draws
    obs = np.stack([_per_map(b, v, a, settings.orient) for b, v, a in zip(bodies, values, axes)])  # [M, 2, k]
    weights = [b.fit(v) for b, v in zip(bodies, values)]  # [n_kernels + 1, k] each, fitted once
    one_body = [b.test(v, w) for b, v, w in zip(bodies, values, weights)]
    comps = []
    wide = settings.wide and all(b.wide() is not None for b in bodies)
    for j in range(k):
        # per model the mixtures its surrogates are drawn from, as (body, weights): fitted,
        # broader (``null_weights``) and, with ``wide``, the wide twin's
        variants = [[(b, wv) for wv in b.null_weights(w[:, j])] + ([(b.wide(), b.wide_weights(w[:, j]))] if wide else [])
                    for b, w in zip(bodies, weights)]
        t = combined_statistic(obs[:, :, j], settings.statistic)  # [2]: along, across
        p_var = []
        for v in range(len(variants[0])):
            null = combined_statistic(np.stack([_per_map(ws[v][0], ws[v][0].surrogates(ws[v][1], B), a, settings.orient)
                                                for ws, a in zip(variants, axes)]), settings.statistic)  # [2, B]
            p_var.append(_monte_carlo_p(null, t))
        p_var = np.array(p_var)  # [variants, 2]: fitted, broader (scale_range > 1), wide (if used)
        p_dir = _monte_carlo_p(_direction_null(bodies, [v[:, j] for v in values], axes, settings, j), t)  # [2]
        comp = {}
        for i, axis in enumerate(AXES):
            per_p = np.array([ob[f"{axis}_p_value"][j] for ob in one_body])
            comp[axis] = {"mean_signed": float(obs[:, i, j].mean()), "statistic": float(t[i]),
                          "per_model": obs[:, i, j].tolist(),
                          "p_value": float(max(p_var[:, i].max(), p_dir[i])),
                          "p_surrogate": float(p_var[:, i].max()), "p_direction": float(p_dir[i]),
                          "p_fitted": float(p_var[0, i]),
                          "p_broader": float(p_var[1, i]) if len(p_var) > 1 else None,
                          "p_wide": float(p_var[2, i]) if wide else None,
                          "fisher_p": fisher_p(per_p), "per_model_p": per_p.tolist(),
                          "sign_flip_p": sign_flip_p(obs[:, i, j])}
        comps.append(comp)
    return {"n_models": M, "draws": B, "min_p": 1.0 / (B + 1), "sign_flip_min_p": 2.0 / 2 ** M,
            "orient": settings.orient, "statistic": settings.statistic, "axis_deg": axes.tolist(), "components": comps}

