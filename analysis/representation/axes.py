"""Axis-orientation measures of scalar maps over a body: is a map a body-axis gradient?

Pure NumPy functions over arrays. A *map* is one value per alive cell (a PC score, a
channel); the *body* is the set of alive cells with its alpha.

Angle convention (used everywhere in ``analysis``)
--------------------------------------------------
Degrees, 0 = +x = to the right in the image, increasing **counter-clockwise as the image
is viewed** (90 = up, 180 = left, 270 = down). Arrays store rows with +y *downward* (row
index grows down the image), so the image-view coordinates of the cell at ``(row, col)``
are ``u = col`` (right) and ``v = -row`` (up), and a direction ``theta`` is the array
step ``(d_col, d_row) = (cos theta, -sin theta)``. A map that increases toward the top of
the image points at 90 degrees.

* ``direction_deg`` of a map, in [0, 360): the direction in which it *increases* (a signed
  direction; flipping the map's sign adds 180).
* An *axis* (the body's long axis) has no sign: reported in [0, 180).
* ``angle_to_body_axis_deg``, in [0, 90]: the acute angle between a map's direction and the
  body's long axis (0: the map changes along the body, head-tail; 90: across it, left-right).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import isotonic_regression

from nca.errors import NCAError
from nca.model import lattice_points

# Coarse search grid for the best direction, then a fine grid around the best coarse angle.
COARSE_STEP_DEG = 5.0
# direction_spread_deg: directions whose rank association is within this of the best.
SPREAD_TOLERANCE = 0.05
# Direction refinement: a local-linear kernel smoother of the score against the projected
# position (Gaussian kernel, this bandwidth in cells), evaluated on bins of this width.
SMOOTHER_BANDWIDTH = 1.5
SMOOTHER_BIN = 0.25
# Refinement grids after the coarse step: (half-width, step) in degrees.
REFINE_GRIDS = ((6.0, 0.5), (0.6, 0.05))
REFINE_CLIMBS = 5

KINDS = ("along-axis", "across-axis", "radial", "none")


@dataclass(frozen=True)
class AxisThresholds:
    """How a component is classified (shown in the report).

    min_association: a component is axial when its best directional rank association
    (Spearman) is at least this, radial when |radial Spearman| is at least this; when both
    pass, the larger one wins; when neither passes, the kind is "none".
    along_max_deg: an axial component whose direction is within this angle of the body's
    long axis is "along-axis", otherwise "across-axis".
    min_elongation: below this ratio of the body's principal standard deviations the long
    axis is ill-defined; the along/across label is then flagged ``axis_ambiguous``.
    """

    min_association: float = 0.5
    along_max_deg: float = 45.0
    min_elongation: float = 1.15


@dataclass(frozen=True)
class BodyFrame:
    """The body's own frame from its alpha-weighted second moments.

    centroid_rc: (row, col) of the alpha-weighted centroid (array coordinates);
    axis_deg: long axis in [0, 180) (image-view convention above);
    elongation: sqrt(largest / smallest eigenvalue) of the position covariance (>= 1);
    n_alive: number of alive cells.
    """

    centroid_rc: tuple[float, float]
    axis_deg: float
    elongation: float
    n_alive: int


@dataclass(frozen=True)
class AxisMeasures:
    """What ``measure_maps`` finds for one map (see ``docs/pca.md`` for the exact definitions)."""

    kind: str
    direction_deg: float
    association: float
    linear_deg: float
    linear_r2: float
    radial_association: float
    angle_to_body_axis_deg: float
    monotone_r2: float
    step_r2: float
    profile: str
    axis_ambiguous: bool
    direction_spread_deg: float

    def as_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- geometry


def direction_vector(theta_deg) -> np.ndarray:
    """Unit vector(s) of direction ``theta`` in image-view coordinates (u right, v up).

    theta_deg: scalar or [n] -> [2] or [n, 2]. In array terms (d_col, d_row) = (u, -v).
    """
    t = np.deg2rad(np.asarray(theta_deg, np.float64))
    return np.stack([np.cos(t), np.sin(t)], axis=-1)


def view_coords(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Array (row, col) -> image-view (u, v) = (col, -row). rows, cols: [n] -> [n, 2]."""
    return np.stack([np.asarray(cols, np.float64), -np.asarray(rows, np.float64)], axis=-1)


def cell_rc(height: int, width: int, topology: str = "square") -> tuple[np.ndarray, np.ndarray]:
    """Where each cell of an [H, W] grid sits, in (row, column) units of a square grid centred
    on the seed cell (H // 2, W // 2): the array indices on the square grid; on the hex grid
    (axial coordinates, ``topology="hex"``) its lattice point, ``(cy + (r - cy) sqrt(3)/2, cx +
    (c - cx) - (r - cy) / 2)``, where each of a cell's 6 neighbours is at distance 1. Shapes,
    distances and directions computed from these positions are those of the body's Euclidean
    frame (on the hex array they would be sheared: a disc an ellipse, a half a slanted cut);
    rows still grow downward, as in ``view_coords``. -> (rows [H, W], cols [H, W]) float64."""
    ii, jj = np.mgrid[:height, :width].astype(np.float64)
    if topology != "hex":
        return ii, jj
    cy, cx = height // 2, width // 2
    x, y = np.moveaxis(lattice_points(ii - cy, jj - cx, "hex"), -1, 0)  # the lattice about the seed cell
    return cy + y, cx + x


def wrap180(angle_deg):
    """Wrap a signed angle difference into (-180, 180]."""
    a = np.mod(np.asarray(angle_deg, np.float64) + 180.0, 360.0) - 180.0
    return np.where(a == -180.0, 180.0, a)


def axis_angle_between(a_deg, b_deg):
    """Acute angle in [0, 90] between two directions taken as axes (mod 180)."""
    d = np.mod(np.asarray(a_deg, np.float64) - np.asarray(b_deg, np.float64), 180.0)
    return np.minimum(d, 180.0 - d)


def alive_of(alpha: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """Alive cells: alpha > threshold. alpha: [..., H, W] -> bool [..., H, W]."""
    return np.asarray(alpha) > threshold


def body_frame(alpha: np.ndarray, threshold: float = 0.1, positions=None) -> BodyFrame:
    """The body's centroid, long axis and elongation. alpha: [H, W].

    Weights are alpha clipped to [0, 1] over the alive cells (alpha > threshold). positions:
    (rows, cols), each [H, W], where the cells sit (default: their array indices; on the hex
    grid ``analysis.rollouts.image_positions``, so that the frame is the drawn body's); the
    centroid is given in those units.
    """
    alpha = np.asarray(alpha, np.float64)
    alive = alive_of(alpha, threshold)
    n = int(alive.sum())
    if n == 0:
        raise NCAError("no alive cells: the body frame is undefined")
    rows, cols = np.nonzero(alive)
    pr, pc = positions if positions is not None else cell_rc(*alpha.shape)
    c, axis, elong = points_frame(view_coords(pr[rows, cols], pc[rows, cols]), np.clip(alpha[rows, cols], 0.0, 1.0))
    return BodyFrame((float(-c[1]), float(c[0])), axis, elong, n)


def points_frame(uv: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The weighted centroid [2], long axis (degrees in [0, 180), image view) and elongation
    (sqrt of the covariance's eigenvalue ratio) of points uv [n, 2] with weights [n] >= 0:
    ``body_frame`` of cells at any positions (e.g. a hex grid's lattice points)."""
    w = np.asarray(weights, np.float64)
    w = w / w.sum()
    c = w @ uv
    d = uv - c
    cov = (d * w[:, None]).T @ d
    evals, evecs = np.linalg.eigh(cov)  # ascending
    major = evecs[:, 1]
    axis = float(np.mod(np.rad2deg(np.arctan2(major[1], major[0])), 180.0))
    elong = float(np.sqrt(evals[1] / evals[0])) if evals[0] > 1e-12 else float("inf")
    return c, axis, elong


# --------------------------------------------------------------------------- associations


def _standardize(a: np.ndarray, axis: int) -> np.ndarray:
    a = a - a.mean(axis=axis, keepdims=True)
    norm = np.sqrt((a * a).sum(axis=axis, keepdims=True))
    return np.divide(a, norm, out=np.zeros_like(a), where=norm > 0)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties) of two [n] vectors; 0 if constant."""
    ra = _standardize(rankdata(a)[:, None], 0)[:, 0]
    rb = _standardize(rankdata(b)[:, None], 0)[:, 0]
    return float(ra @ rb)


def directional_association(scores: np.ndarray, uv: np.ndarray, thetas_deg: np.ndarray) -> np.ndarray:
    """Spearman between each map and the position projected on each direction.

    scores: [n, k]; uv: [n, 2] image-view positions; thetas_deg: [m] -> rho [m, k].
    Ties (cells in one grid column at theta = 0) get average ranks, so exact grid angles
    are not favoured.
    """
    rs = _standardize(rankdata(scores, axis=0), 0)  # [n, k]
    proj = direction_vector(thetas_deg) @ uv.T  # [m, n]
    # Round away float noise so cells on one grid line tie exactly.
    rp = _standardize(rankdata(np.round(proj, 9), axis=1), 1)  # [m, n]
    return rp @ rs


def rankdata(x, axis: int | None = None) -> np.ndarray:
    """Ranks from 1, ties averaged, along ``axis`` (None: of the flattened array); a slice
    holding a NaN is all NaN. What ``scipy.stats.rankdata`` gives, bit for bit (a test checks),
    in NumPy alone: importing scipy.stats cost 0.8 s of every report's start, and its checks
    were a large part of each of the spatial null's thousands of small calls."""
    x = np.asarray(x)
    if axis is None:
        x, axis = x.ravel(), -1
    x = np.swapaxes(x, axis, -1)
    shape = x.shape
    if x.size == 0:
        return np.swapaxes(np.empty(shape), axis, -1)
    order = np.argsort(x, axis=-1, kind="stable")
    y = np.take_along_axis(x, order, axis=-1)
    first = np.concatenate([np.ones(shape[:-1] + (1,), bool), y[..., :-1] != y[..., 1:]], axis=-1)
    counts = np.diff(np.flatnonzero(first), append=y.size)  # each run of equal values
    ordinal = np.broadcast_to(np.arange(1, shape[-1] + 1, dtype=np.float64), shape)
    sorted_ranks = np.repeat(ordinal[first] + (counts - 1) / 2, counts).reshape(shape)
    ranks = np.empty(shape)
    np.put_along_axis(ranks, order, sorted_ranks, axis=-1)
    if x.dtype.kind in "fc":
        ranks[np.isnan(x).any(axis=-1)] = np.nan
    return np.swapaxes(ranks, axis, -1)


def isotonic(y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The best non-decreasing least-squares fit of ``y [n]`` (pool adjacent violators), with
    optional ``weights [n]`` -> [n]. scipy's solver, which scikit-learn's
    ``isotonic_regression`` calls too after validating its input -- the validation cost 4x
    the solve on the spatial null's thousands of small calls."""
    return np.asarray(isotonic_regression(np.asarray(y, np.float64), weights=weights).x, np.float64)


def _isotonic_sorted(score: np.ndarray, proj: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (order [n] sorting proj, score[order], the isotonic fit in that order); cells
    with equal proj (within 1e-9) are pooled."""
    order = np.argsort(proj, kind="stable")
    p, y = proj[order], score[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(p) > 1e-9) + 1])
    counts = np.diff(np.append(starts, len(p))).astype(np.float64)
    return order, y, np.repeat(isotonic(np.add.reduceat(y, starts) / counts, counts), counts.astype(int))


def monotone_fit(score: np.ndarray, proj: np.ndarray) -> np.ndarray:
    """The best non-decreasing function of ``proj [n]`` fitted to ``score [n]`` (isotonic
    regression; cells with equal proj are pooled) -> its value at each cell [n]."""
    order, _, fit = _isotonic_sorted(score, proj)
    out = np.empty(len(fit))
    out[order] = fit
    return out


def monotone_r2(score: np.ndarray, proj: np.ndarray) -> float:
    """Fraction of the variance of ``score [n]`` explained by the best non-decreasing
    function of ``proj [n]`` (``monotone_fit``)."""
    sst = float(((score - score.mean()) ** 2).sum())
    if sst <= 0 or len(score) < 3:
        return 0.0
    _, y, fit = _isotonic_sorted(score, proj)
    return 1.0 - float(((y - fit) ** 2).sum()) / sst


def smoother_r2(y: np.ndarray, uv: np.ndarray, thetas_deg: np.ndarray, weights: np.ndarray | None = None,
                bandwidth: float = SMOOTHER_BANDWIDTH) -> np.ndarray:
    """Variance fraction of one map explained by a smooth function of the position projected
    on each direction: a local-linear Gaussian-kernel regression (Fan & Gijbels 1996, "Local
    Polynomial Modelling and Its Applications") on 0.25-cell linear bins.

    y: [n]; uv: [n, 2]; thetas_deg: [m]; weights: [B, n] cell weights (bootstrap counts) or
    None (all 1) -> [B, m] (B = 1 without weights). Unlike isotonic regression the fit
    changes smoothly with the angle and has few effective parameters, so its maximum over
    angles is not pulled by noise or by cells tying on grid lines: on a noisy ramp it is as
    precise as the linear fit, and unlike the linear fit it is unbiased for a split or a
    saturating profile on a body that is not symmetric about the split.
    """
    y = np.asarray(y, np.float64)
    n = len(y)
    w = np.ones((1, n)) if weights is None else np.atleast_2d(np.asarray(weights, np.float64))
    nb_draws = w.shape[0]
    p = (uv - uv.mean(0)) @ direction_vector(np.atleast_1d(thetas_deg)).T  # [n, m]
    m = p.shape[1]
    p = p - p.min(0)
    x = p / SMOOTHER_BIN
    i0 = np.floor(x).astype(np.int64)
    f = x - i0
    nbin = int(i0.max()) + 2
    centre = np.arange(nbin) * SMOOTHER_BIN
    base = (np.arange(nb_draws)[:, None, None] * m + np.arange(m)[None, None, :]) * nbin  # [B, 1, m]
    lo, hi = (base + i0[None]).ravel(), (base + i0[None] + 1).ravel()
    wf = w[:, :, None]  # [B, n, 1]

    def smoothed(vals):  # vals [B, n, m] -> kernel-weighted bin sums [B, m, nbin]
        acc = (np.bincount(lo, (vals * (1 - f)).ravel(), minlength=nb_draws * m * nbin)
               + np.bincount(hi, (vals * f).ravel(), minlength=nb_draws * m * nbin))
        return gaussian_filter1d(acc.reshape(nb_draws, m, nbin), bandwidth / SMOOTHER_BIN, axis=2,
                                 mode="constant", truncate=3.0)

    yy = y[None, :, None]
    s0, s1, s2 = smoothed(wf * np.ones_like(p)), smoothed(wf * p), smoothed(wf * p * p)
    t0, t1 = smoothed(wf * yy * np.ones_like(p)), smoothed(wf * yy * p)
    # local line about each bin centre c: moments about c
    m1 = s1 - centre * s0
    m2 = s2 - 2 * centre * s1 + centre ** 2 * s0
    n1 = t1 - centre * t0
    det = s0 * m2 - m1 ** 2
    ok = det > 1e-9 * np.maximum(s0, 1e-12) ** 2
    level = np.where(ok, (m2 * t0 - m1 * n1) / np.where(ok, det, 1.0), t0 / np.maximum(s0, 1e-12))
    # fit at each cell: linear interpolation between its two bins
    idx = np.broadcast_to(i0.T[None], (nb_draws, m, n))
    fit = (np.take_along_axis(level, idx, 2) * (1 - f.T)[None] + np.take_along_axis(level, idx + 1, 2) * f.T[None])
    ym = (w * y).sum(1) / w.sum(1)
    sst = (w * (y[None] - ym[:, None]) ** 2).sum(1)  # [B]
    sse = (w[:, None, :] * (y[None, None, :] - fit) ** 2).sum(2)  # [B, m]
    return np.where(sst[:, None] > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0)[:, None], 0.0)


def refine_direction(y: np.ndarray, uv: np.ndarray, start_deg, weights: np.ndarray | None = None,
                     fast: bool = False) -> np.ndarray:
    """The angle maximising ``smoother_r2`` near ``start_deg``: a 0.5-deg grid over +-6 deg,
    re-centred while the best angle lies on the window's edge (up to REFINE_CLIMBS times: the
    rank-association start can be more than 6 deg from the smoother's optimum), then a 0.05-deg
    grid over +-0.6 deg (fast: instead of the second grid, the vertex of the parabola through
    the best 0.5-deg point and its neighbours; for bootstrap draws).
    y: [n]; start_deg: scalar or [B]; weights: [B, n] or None -> [B] degrees (not wrapped)."""
    w2 = None if weights is None else np.atleast_2d(weights)
    nb_draws = 1 if w2 is None else w2.shape[0]
    best = np.broadcast_to(np.atleast_1d(np.asarray(start_deg, np.float64)), (nb_draws,)).copy()

    def grid_r2(centres, offsets):  # [B, m]
        if np.allclose(centres, centres[0]):
            return smoother_r2(y, uv, centres[0] + offsets, w2)
        return np.stack([smoother_r2(y, uv, c + offsets, None if w2 is None else w2[i:i + 1])[0]
                         for i, c in enumerate(centres)])

    half, step = REFINE_GRIDS[0]
    offsets = np.arange(-half, half + 1e-9, step)
    r2 = grid_r2(best, offsets)  # [B, m]
    i = np.argmax(r2, axis=1)
    best = best + offsets[i]
    active = (i == 0) | (i == len(offsets) - 1)
    for _ in range(REFINE_CLIMBS - 1):  # only the draws whose best lies on the window's edge move on
        if not active.any():
            break
        for d in np.flatnonzero(active):
            r2[d] = smoother_r2(y, uv, best[d] + offsets, None if w2 is None else w2[d:d + 1])[0]
            i[d] = np.argmax(r2[d])
            best[d] += offsets[i[d]]
            active[d] = i[d] in (0, len(offsets) - 1)
    if fast:
        i = np.clip(i, 1, len(offsets) - 2)
        rows = np.arange(len(i))
        a, b, c = r2[rows, i - 1], r2[rows, i], r2[rows, i + 1]
        den = a - 2 * b + c
        shift = np.where(den < 0, 0.5 * (a - c) / np.where(den < 0, den, -1.0), 0.0)
        # best sits at the grid point argmax(r2) (or, where clipped, next to it)
        return best + (i - np.argmax(r2, axis=1) + np.clip(shift, -1.0, 1.0)) * step
    for half, step in REFINE_GRIDS[1:]:
        offsets = np.arange(-half, half + 1e-9, step)
        best = best + offsets[np.argmax(grid_r2(best, offsets), axis=1)]
    return best


def best_direction(scores: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The direction along which each map increases most.

    scores: [n, k]; uv: [n, 2]. Two stages:
    1. coarse: the 5-deg grid angle maximising the Spearman rank association (all maps
       at once);
    2. refine: from it, the angle at which a smooth function of the projected
       position explains the most variance (``smoother_r2``: a local-linear kernel
       smoother, bandwidth 1.5 cells), on a +-6-deg window of 0.5-deg steps (moved while
       the best is on its edge), then a 0.05-deg grid.
       Why not the isotonic (monotone) R^2 used before: it overfits the noise (its optimum
       over angles wanders by 2-3 deg on a ramp with 0.3 sd noise) and cells that tie on
       grid lines at 0/45/90 deg bias it away from those angles by 1-3 deg.
    Returns (direction_deg [k] in [0, 360), Spearman at that direction [k], coarse
    Spearman curve [72, k]).
    """
    coarse = np.arange(0.0, 360.0, COARSE_STEP_DEG)
    curve = directional_association(scores, uv, coarse)
    k = scores.shape[1]
    direction, assoc = np.zeros(k), np.zeros(k)
    for j in range(k):
        best = coarse[np.argmax(curve[:, j])]
        direction[j] = np.mod(refine_direction(scores[:, j], uv, best)[0], 360.0)
        assoc[j] = directional_association(scores[:, j:j + 1], uv, [direction[j]])[0, 0]
    return direction, assoc, curve


def direction_spreads(direction_deg: np.ndarray, association: np.ndarray, curve: np.ndarray,
                      tolerance: float = SPREAD_TOLERANCE) -> np.ndarray:
    """How precisely each map's direction is determined: the largest angle (deg, [0, 180])
    between the found direction and any 5-deg-grid direction whose association is within
    ``tolerance`` of the best. direction_deg, association: [k]; curve: [72, k] -> [k].
    Small for a clear gradient (~15-30 deg: a ramp's Spearman falls off slowly with angle,
    more slowly on an elongated body); large when a second direction -- a second peak or a
    broad shoulder -- orders the cells about as well; ~180 for a flat curve (radial, none)."""
    coarse = np.arange(0.0, 360.0, COARSE_STEP_DEG)
    near_best = curve >= association[None, :] - tolerance
    dist = np.abs(wrap180(coarse[:, None] - direction_deg[None, :]))
    return np.where(near_best, dist, 0.0).max(0)


def linear_fit(scores: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least squares ``score ~ a + b*u + c*v`` per map. scores: [n, k]; uv: [n, 2].

    Returns (angle of (b, c) in [0, 360) [k], R^2 [k]); R^2 is 0 for a constant map.
    """
    design = np.column_stack([np.ones(len(uv)), uv - uv.mean(0)])
    coef, *_ = np.linalg.lstsq(design, scores, rcond=None)
    resid = scores - design @ coef
    sst = ((scores - scores.mean(0)) ** 2).sum(0)
    r2 = np.where(sst > 0, 1.0 - (resid ** 2).sum(0) / np.where(sst > 0, sst, 1.0), 0.0)
    angle = np.mod(np.rad2deg(np.arctan2(coef[2], coef[1])), 360.0)
    return angle, r2


def radial_association(scores: np.ndarray, uv: np.ndarray, centre_uv: np.ndarray) -> np.ndarray:
    """Spearman of each map with distance from the centre. [n, k] -> [k].

    Negative: high in the core, low at the periphery; positive: the reverse.
    """
    dist = np.round(np.hypot(*(uv - centre_uv).T), 9)  # equal distances tie exactly
    rd = _standardize(rankdata(dist)[:, None], 0)
    rs = _standardize(rankdata(scores, axis=0), 0)
    return (rd.T @ rs)[0]


def profile_fits(score: np.ndarray, proj: np.ndarray) -> tuple[float, float, float]:
    """How one map varies along the projection on its direction. score, proj: [n].

    Returns (monotone_r2, step_r2, linear1d_r2): the variance fraction explained by the
    best non-decreasing function of ``proj`` (isotonic regression), by the best two-level
    step (one threshold), and by a straight line.
    """
    sst = float(((score - score.mean()) ** 2).sum())
    if sst <= 0 or len(score) < 3:
        return 0.0, 0.0, 0.0
    monotone = monotone_r2(score, proj)
    order = np.argsort(proj, kind="stable")
    s = score[order]
    # Best split between sorted positions i-1 | i, only where proj changes (same-proj cells
    # stay together): between-group sum of squares n1*n2/n*(m1-m2)^2.
    n = len(s)
    csum = np.cumsum(s)[:-1]
    n1 = np.arange(1, n)
    m1 = csum / n1
    m2 = (s.sum() - csum) / (n - n1)
    between = n1 * (n - n1) / n * (m1 - m2) ** 2
    valid = np.diff(proj[order]) > 1e-9
    step = float(between[valid].max() / sst) if valid.any() else 0.0
    lin = float(np.corrcoef(score, proj)[0, 1] ** 2) if np.std(proj) > 0 else 0.0
    return monotone, step, lin


# --------------------------------------------------------------------------- per map


def classify(association: float, radial: float, angle_to_axis: float,
             thresholds: AxisThresholds = AxisThresholds()) -> str:
    """One of ``KINDS`` from the three measures (rules in ``AxisThresholds``)."""
    if max(association, abs(radial)) < thresholds.min_association:
        return "none"
    if abs(radial) > association:
        return "radial"
    return "along-axis" if angle_to_axis <= thresholds.along_max_deg else "across-axis"


def measure_scores(scores: np.ndarray, rows: np.ndarray, cols: np.ndarray, frame: BodyFrame,
                   thresholds: AxisThresholds = AxisThresholds()) -> list[AxisMeasures]:
    """Axis measures of k maps sampled at the alive cells.

    scores: [n, k] (one row per cell); rows, cols: [n] array coordinates of those cells;
    frame: the body's frame (``body_frame``). Returns one ``AxisMeasures`` per map.
    """
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2 or scores.shape[0] != len(rows):
        raise ValueError(f"scores must be [n_cells, k] with n_cells={len(rows)}, got {scores.shape}")
    uv = view_coords(rows, cols)
    centre = view_coords([frame.centroid_rc[0]], [frame.centroid_rc[1]])[0]
    direction, assoc, curve = best_direction(scores, uv)
    spread = direction_spreads(direction, assoc, curve)
    lin_deg, lin_r2 = linear_fit(scores, uv)
    radial = radial_association(scores, uv, centre)
    ambiguous = frame.elongation < thresholds.min_elongation
    out = []
    for j in range(scores.shape[1]):
        proj = (uv - centre) @ direction_vector(direction[j])
        mono, step, lin1d = profile_fits(scores[:, j], proj)
        to_axis = float(axis_angle_between(direction[j], frame.axis_deg))
        kind = classify(float(assoc[j]), float(radial[j]), to_axis, thresholds)
        out.append(AxisMeasures(
            kind=kind,
            direction_deg=float(direction[j]),
            association=float(assoc[j]),
            linear_deg=float(lin_deg[j]),
            linear_r2=float(lin_r2[j]),
            radial_association=float(radial[j]),
            angle_to_body_axis_deg=to_axis,
            monotone_r2=mono,
            step_r2=step,
            profile="split" if step > lin1d else "ramp",
            axis_ambiguous=bool(ambiguous and kind in ("along-axis", "across-axis")),
            direction_spread_deg=float(spread[j]),
        ))
    return out


def measure_maps(maps: np.ndarray, alpha: np.ndarray, threshold: float = 0.1,
                 thresholds: AxisThresholds = AxisThresholds()) -> tuple[BodyFrame, list[AxisMeasures]]:
    """Axis measures of k maps over one body.

    maps: [H, W, k] (values at dead cells are ignored, NaN is fine); alpha: [H, W].
    Returns (body frame, [AxisMeasures] * k).
    """
    maps = np.asarray(maps)
    if maps.ndim == 2:
        maps = maps[..., None]
    frame = body_frame(alpha, threshold)
    rows, cols = np.nonzero(alive_of(alpha, threshold))
    return frame, measure_scores(maps[rows, cols], rows, cols, frame, thresholds)
