"""Positional information: how well does a cell's state tell where it is in the body?

Wolpert's question (Wolpert 1969, J. Theor. Biol. 25:1) asked of a Growing NCA. Every cell
alive at an analysed development step gets three **body-frame coordinates** in the frame
of the grown body (``analysis.representation.axes.body_frame`` of the reference step's alpha, mean over
replicates): ``along`` (signed distance along the long axis from the centroid, px),
``across`` (signed distance across it, px) and ``radius`` (distance from the centroid,
px). The frame is the *final* body's, so "where a cell is" means where it is in the body
that will be grown, at every step.

Two measures, each with a control:

* **Probes** (``probe_scores``): a linear probe (ridge regression on standardised features)
  and a small nonlinear one (k-nearest-neighbour regression in the features' own metric,
  not standardised) from cell features (the 16
  state channels, the 12 hidden ones, the 48 perception features or the 128 MLP units) to
  each coordinate, trained on the cells of all replicates but one and scored (R^2, RMSE in
  px) on the held-out replicate's cells (leave-one-replicate-out; replicates are
  independent rollouts -- fire masks -- or training seeds). Control: the same probes trained
  on positions shuffled among the training cells (``shuffled_*``); they must score ~0.
  RMSE is the positional error sigma_x of Dubuis et al. 2013 (PNAS 110:16301) measured by
  decoding.
* **Information in bits** (``decoding_bits``): the positional information a code carries,
  I(code; coord), is bounded below by what a decoder trained on *other* replicates recovers:
  I >= h(coord) - 1/2 log2(2 pi e MSE), with MSE the held-out squared error of the decoded
  coordinate (h(Y|X) <= h(Y - Yhat) <= the entropy of a Gaussian of that variance; the
  positional-error argument of Dubuis, Tkacik, Wieschaus, Gregor & Bialek 2013, PNAS
  110:16301, "Positional information, in bits"). h(coord) is the plug-in entropy of the
  cells' coordinates at one-cell (1 px) resolution with the Miller-Madow correction. The
  bound is tight for Gaussians (planted test: -1/2 log2(1 - rho^2)); reported clipped at 0.
  Per feature (one channel, one PC) the decoder is a 1-D kNN regression (the conditional
  mean); for the whole state the probes above. Control: the same with decoders trained on
  shuffled positions (must be ~0).
  Why not the Kraskov-Stoegbauer-Grassberger estimator (``ksg_mi``, Kraskov et al. 2004,
  Phys. Rev. E 69:066138; sklearn's ``mutual_info_regression``)? It is validated here too,
  but it treats cells as independent samples: a smooth random field that differs in every
  replicate is a function of position *within* one rollout, and KSG reports bits for it
  that no other rollout shares (tests/test_positional.py plants exactly this). A decoder
  scored on held-out replicates only counts information that generalises.

What the replicate split can and cannot show (issue 23): fire-mask replicates put the same
body on the same grid cells with nearly the same states, so a probe held out by replicate
can pass by a lookup "grid cell -> state"; a smooth random field identical in every
rollout and unrelated to the body (``fixed_field``) passes it. ``probe_scores`` over
replicates measures reproducibility. **Held-out placements** (``positional_by_placement``)
measure position: bodies grown from translated seeds with rotated perception, each cell in
its own body's frame, probes (k and alpha by inner cross-validation) trained on some
placements and scored on another, beside the fixed field on the same cells (the null).
``positional_error`` is the sigma_x of Dubuis et al. 2013 from replicate-to-replicate
variability (placements x rollouts aligned in their frames), reported beside the decoding
bound: the former is local replicate noise, the latter what a decoder trained elsewhere
recovers.

Intervals: mean and 95 % t-interval over the held-out groups (``interval``); n is the
number of replicates (or placements).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import jax
import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma

from nca.errors import NCAError
from nca.rng import stream

from analysis.representation.axes import BodyFrame, body_frame, cell_rc, direction_vector

COORDS = ("along", "across", "radius")
PROBES = ("ridge", "knn")
FEATURE_SETS = ("hidden", "state", "perception", "mlp")

# Named PRNG streams (fold_in constants) of this module.
STREAM_SUBSAMPLE = 1
STREAM_SHUFFLE = 2
STREAM_KSG_NOISE = 3


# --------------------------------------------------------------------------- intervals


def interval(values, level: float = 0.95) -> dict:
    """Mean and t-interval of ``values`` (NaN dropped): ``analysis.stats.mean_ci``
    ({"mean", "lo", "hi", "n", "sd"}; lo/hi None with a reason when n < 2)."""
    from analysis.stats import mean_ci

    return mean_ci(values, level)


# --------------------------------------------------------------------------- body frame


def frame_coords(rows, cols, frame: BodyFrame) -> np.ndarray:
    """Body-frame coordinates of cells. rows, cols: [n] positions (array indices on the square
    grid; any positions, in the frame's units) -> [n, 3] float64
    (along, across, radius) in px. ``along`` increases toward ``frame.axis_deg`` (image
    view, see analysis.representation.axes), ``across`` toward axis_deg + 90."""
    u = np.asarray(cols, np.float64) - frame.centroid_rc[1]
    v = -(np.asarray(rows, np.float64) - frame.centroid_rc[0])
    uv = np.stack([u, v], -1)
    along = uv @ direction_vector(frame.axis_deg)
    across = uv @ direction_vector(frame.axis_deg + 90.0)
    return np.stack([along, across, np.hypot(u, v)], -1)


def coordinate_grid(shape: tuple[int, int], frame: BodyFrame, positions=None) -> np.ndarray:
    """Body-frame coordinates of every cell of an ``[H, W]`` grid -> [H, W, 3]; each cell at
    ``positions`` (rows, cols [H, W]; default its array index; on the hex grid
    ``analysis.rollouts.image_positions``, in the frame's units)."""
    rows, cols = positions if positions is not None else cell_rc(*shape)
    return frame_coords(rows.ravel(), cols.ravel(), frame).reshape(shape + (3,))


def reference_frame(alpha: np.ndarray, threshold: float = 0.1, positions=None) -> BodyFrame:
    """The frame of the grown body: alpha [B, H, W] (replicates) -> ``body_frame`` of the
    mean alpha, cells at ``positions`` (as ``body_frame``). One clear error when nothing lives."""
    a = np.asarray(alpha, np.float64)
    a = a.mean(0) if a.ndim == 3 else a
    if not (a > threshold).any():
        raise NCAError("the model grows no body (no alive cells at the reference step): positions are undefined")
    return body_frame(a, threshold, positions)


# --------------------------------------------------------------------------- information


def gaussian_mi_bits(rho) -> np.ndarray:
    """MI of a bivariate Gaussian with correlation rho, in bits: -1/2 log2(1 - rho^2)."""
    rho = np.asarray(rho, np.float64)
    return -0.5 * np.log2(1.0 - rho ** 2)


POSITION_RESOLUTION_PX = 1.0  # one cell: the resolution at which position entropy is counted


def entropy_bits(y, width: float = POSITION_RESOLUTION_PX) -> float:
    """Differential entropy (bits) of samples y [n] from a histogram of bin ``width``:
    plug-in entropy of the bins + log2(width), with the Miller-Madow bias correction
    (occupied bins - 1) / (2 n ln 2)."""
    y = np.asarray(y, np.float64).ravel()
    if y.size < 2:
        return float("nan")
    counts = np.unique(np.floor((y - y.min()) / width).astype(np.int64), return_counts=True)[1]
    p = counts / y.size
    return float(-(p * np.log2(p)).sum() + np.log2(width) + (len(counts) - 1) / (2 * y.size * np.log(2)))


def decoding_bits(y, pred, width: float = POSITION_RESOLUTION_PX) -> float:
    """Lower bound on I(code; y) from a decoder's held-out predictions: h(y) - 1/2 log2(2 pi e
    MSE), clipped at 0 (Dubuis et al. 2013). y, pred: [n]. Exact for jointly Gaussian data
    decoded by the conditional mean."""
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    mse = float(np.mean((y - pred) ** 2))
    if not np.isfinite(mse) or y.size < 2:
        return float("nan")
    if mse <= 0:
        return float("inf")
    return max(0.0, entropy_bits(y, width) - 0.5 * np.log2(2 * np.pi * np.e * mse))


def ksg_mi(x, y, k: int = 3, key: jax.Array | None = None) -> float:
    """Kraskov-Stoegbauer-Grassberger estimate of I(x; y) in bits (algorithm 1 of Kraskov
    et al. 2004): I = psi(k) + psi(N) - <psi(n_x + 1) + psi(n_y + 1)>, with eps_i the
    max-norm distance to the k-th neighbour in the joint space and n_x, n_y the points
    strictly closer than eps_i in each marginal space.

    x: [n] or [n, dx]; y: [n] or [n, dy]. Each column is standardised and jittered by
    1e-10 sd (as sklearn does) so that tied values do not make distances zero. The raw
    estimate is returned (it can be slightly negative for independent data: that is the
    estimator's noise, kept so nulls are unbiased)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    n = len(x)
    if n != len(y):
        raise ValueError(f"x and y have {n} and {len(y)} samples")
    if n <= k + 1:
        raise NCAError(f"need more than {k + 1} samples for a k={k} information estimate, got {n}")
    key = jax.random.key(0) if key is None else key
    noise = numpy_rng(jax.random.fold_in(key, STREAM_KSG_NOISE)).standard_normal((n, x.shape[1] + y.shape[1]))

    def prep(a, z):
        sd = a.std(0)
        a = (a - a.mean(0)) / np.where(sd > 0, sd, 1.0)
        return a + 1e-10 * z

    x = prep(x, noise[:, :x.shape[1]])
    y = prep(y, noise[:, x.shape[1]:])
    xy = np.hstack([x, y])
    eps = cKDTree(xy).query(xy, k=k + 1, p=np.inf)[0][:, -1]
    r = np.nextafter(eps, 0)  # strictly closer than eps
    nx = cKDTree(x).query_ball_point(x, r, p=np.inf, return_length=True) - 1
    ny = cKDTree(y).query_ball_point(y, r, p=np.inf, return_length=True) - 1
    mi = digamma(n) + digamma(k) - np.mean(digamma(nx + 1) + digamma(ny + 1))
    return float(mi / np.log(2.0))


# --------------------------------------------------------------------------- probes


@dataclass(frozen=True)
class ProbeSettings:
    """The probes. ridge_alpha: L2 penalty of the linear probe (features standardised on the
    training cells); knn_k: neighbours of the nonlinear probe; max_train: training cells
    used per fit (a random subsample beyond it: speed); mi_k: neighbours of the KSG
    estimator (``ksg_mi``, not used by the reports); knn_k_1d: neighbours of the 1-D
    decoder of one feature (``feature_information``: more neighbours, a smoother conditional
    mean, since one feature is a weak code)."""

    ridge_alpha: float = 1.0
    knn_k: int = 10
    max_train: int = 4000
    mi_k: int = 3
    knn_k_1d: int = 30

    def __post_init__(self):
        if self.ridge_alpha < 0 or self.knn_k < 1 or self.max_train < 10 or self.mi_k < 1 or self.knn_k_1d < 1:
            raise NCAError(f"invalid probe settings {self}")


def _fit_predict(kind: str, xtr, ytr, xte, settings: ProbeSettings) -> np.ndarray:
    """Train one probe on (xtr [n, F], ytr [n, 3]) and predict xte [m, F] -> [m, 3]."""
    mu, sd = xtr.mean(0), xtr.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    if kind == "ridge":
        a, b = (xtr - mu) / sd, (xte - mu) / sd
        # closed-form ridge with an unpenalised intercept
        ym = ytr.mean(0)
        g = a.T @ a + settings.ridge_alpha * np.eye(a.shape[1])
        w = np.linalg.solve(g, a.T @ (ytr - ym))
        return b @ w + ym
    if kind == "knn":
        # the features' own metric (not standardised): a near-constant channel would
        # otherwise be blown up to unit variance and its noise would swamp the distances
        a, b = xtr - mu, xte - mu
        k = min(settings.knn_k, len(a))
        _, idx = cKDTree(a).query(b, k=k)
        idx = idx.reshape(len(b), k)
        return ytr[idx].mean(1)
    raise NCAError(f"unknown probe {kind!r}; choose from {PROBES}")


def _r2(y, pred) -> np.ndarray:
    """Out-of-sample R^2 per column: 1 - SSE / SS about the held-out mean. [m, 3] -> [3]."""
    sst = ((y - y.mean(0)) ** 2).sum(0)
    sse = ((y - pred) ** 2).sum(0)
    return np.where(sst > 0, 1.0 - sse / np.where(sst > 0, sst, 1.0), np.nan)


def numpy_rng(key: jax.Array) -> np.random.Generator:
    """A NumPy generator seeded by a JAX key's bits (one fixed-shape op, so no compilation
    per sample size as ``jax.random`` would need for every new n)."""
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


def _subsample(n: int, m: int, key) -> np.ndarray:
    if n <= m:
        return np.arange(n)
    return np.sort(numpy_rng(key).choice(n, m, replace=False))


def _permutation(n: int, key) -> np.ndarray:
    return numpy_rng(key).permutation(n)


def _held_out(features: list[np.ndarray], coords: list[np.ndarray], key: jax.Array, max_train: int,
              min_train: int):
    """Leave-one-group-out splits shared by the probes and the per-feature information.

    Yields ``(g, x_train, y_train, y_train_shuffled, x_test, y_test)`` for each group g with
    at least 3 test cells and ``min_train`` training cells; the training cells are
    subsampled to ``max_train`` and shuffled (the null) with group g's named streams."""
    G = len(features)
    for g in range(G):
        kg = jax.random.fold_in(key, g)
        xtr = np.concatenate([np.asarray(features[h], np.float64) for h in range(G) if h != g])
        ytr = np.concatenate([np.asarray(coords[h], np.float64) for h in range(G) if h != g])
        xte, yte = np.asarray(features[g], np.float64), np.asarray(coords[g], np.float64)
        if len(xte) < 3 or len(xtr) < min_train:
            continue
        sel = _subsample(len(xtr), max_train, jax.random.fold_in(kg, STREAM_SUBSAMPLE))
        xtr, ytr = xtr[sel], ytr[sel]
        perm = _permutation(len(ytr), jax.random.fold_in(kg, STREAM_SHUFFLE))
        yield g, xtr, ytr, ytr[perm], xte, yte


def probe_scores(features: list[np.ndarray], coords: list[np.ndarray], key: jax.Array,
                 settings: ProbeSettings = ProbeSettings()) -> dict:
    """Leave-one-group-out probes from cell features to body-frame coordinates.

    features: per group (replicate or seed) [n_g, F]; coords: per group [n_g, 3]
    (``COORDS``). Each group is held out in turn; the probes are trained on the others'
    cells. Returns per probe in ("ridge", "knn", "shuffled_ridge", "shuffled_knn"):
    ``r2``, ``rmse`` (px) and ``bits`` (``decoding_bits``), each [G, 3] (per held-out
    group, per coordinate).
    """
    G = len(features)
    if G < 2 or len(coords) != G:
        raise NCAError(f"probes need at least 2 groups (replicates or seeds) to hold one out, got {G}")
    out = {name: {m: np.full((G, 3), np.nan) for m in ("r2", "rmse", "bits")}
           for name in ("ridge", "knn", "shuffled_ridge", "shuffled_knn")}
    for g, xtr, ytr, shuffled, xte, yte in _held_out(features, coords, key, settings.max_train, settings.knn_k + 1):
        for kind in PROBES:
            for name, target in ((kind, ytr), (f"shuffled_{kind}", shuffled)):
                pred = _fit_predict(kind, xtr, target, xte, settings)
                out[name]["r2"][g] = _r2(yte, pred)
                out[name]["rmse"][g] = np.sqrt(((yte - pred) ** 2).mean(0))
                out[name]["bits"][g] = [decoding_bits(yte[:, c], pred[:, c]) for c in range(3)]
    return out


def summarise_probes(scores: dict) -> dict:
    """``probe_scores`` output -> JSON-ready intervals over the held-out groups:
    {probe: {coord: {"r2": interval, "rmse": interval, "bits": interval}}}."""
    return {name: {c: {m: interval(v[m][:, i]) for m in v} for i, c in enumerate(COORDS)}
            for name, v in scores.items()}


def feature_information(features: list[np.ndarray], coords: list[np.ndarray], key: jax.Array,
                        settings: ProbeSettings = ProbeSettings()) -> dict:
    """Bits each single feature carries about each coordinate: ``decoding_bits`` of a 1-D
    kNN decoder (k = ``settings.knn_k_1d``) of that feature alone, trained on all groups
    but one and scored on the held-out one.

    features: per group [n_g, F]; coords: per group [n_g, 3]. -> {"bits": [G, F, 3],
    "shuffled_bits": [G, F, 3] (decoders trained on shuffled positions: the null)}."""
    G = len(features)
    if G < 2:
        raise NCAError(f"information needs at least 2 groups to hold one out, got {G}")
    F = np.asarray(features[0]).shape[1]
    bits = np.full((G, F, 3), np.nan)
    null = np.full((G, F, 3), np.nan)
    one_d = ProbeSettings(knn_k=settings.knn_k_1d, max_train=settings.max_train)
    for g, xtr, ytr, shuffled, xte, yte in _held_out(features, coords, key, settings.max_train, one_d.knn_k + 1):
        for j in range(F):
            for arr, target in ((bits, ytr), (null, shuffled)):
                pred = _fit_predict("knn", xtr[:, j:j + 1], target, xte[:, j:j + 1], one_d)
                arr[g, j] = [decoding_bits(yte[:, c], pred[:, c]) for c in range(3)]
    return {"bits": bits, "shuffled_bits": null}


def probe_direction(features: np.ndarray, coord: np.ndarray, ridge_alpha: float = 1.0) -> np.ndarray:
    """The unit direction in (unstandardised) feature space along which the ridge probe's
    prediction of ``coord`` increases: w / sd, normalised. features: [n, F]; coord: [n]
    -> [F]. (For steering: adding this direction moves a cell's decoded position.)"""
    x = np.asarray(features, np.float64)
    mu, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    a = (x - mu) / sd
    y = np.asarray(coord, np.float64)
    w = np.linalg.solve(a.T @ a + ridge_alpha * np.eye(a.shape[1]), a.T @ (y - y.mean()))
    d = w / sd
    n = np.linalg.norm(d)
    if n == 0:
        raise NCAError("the probe direction is zero: the features carry no linear position signal")
    return d / n


# --------------------------------------------------------------------------- cells of rollouts


def cells_at(features: np.ndarray, alive: np.ndarray, coord_grid: np.ndarray, max_cells: int,
             key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """The alive cells of one grid: features [H, W, F], alive bool [H, W], coord_grid
    [H, W, 3] -> (features [n, F], coords [n, 3]), at most ``max_cells`` (random subsample)."""
    rows, cols = np.nonzero(alive)
    s = _subsample(len(rows), max_cells, key)
    rows, cols = rows[s], cols[s]
    return np.asarray(features)[rows, cols], coord_grid[rows, cols]


@dataclass(frozen=True)
class PositionalSettings:
    """What ``run_positional`` measures.

    steps: CA steps grown from the seed; every: analyse every N steps (1..steps; step 0,
    the lone seed cell, is skipped); features: one of FEATURE_SETS; replicates: independent
    rollouts (fire masks), the groups of the leave-one-out probes and the n of the
    intervals; max_cells: cells per replicate and step (random subsample); min_cells:
    fewer alive cells per replicate than this -> the step is reported null with a reason;
    n_pcs: principal components whose information is measured; information_at: the step
    whose per-channel / per-PC information is measured (None: the last).
    """

    steps: int = 200
    every: int = 10
    features: str = "hidden"
    replicates: int = 5
    max_cells: int = 800
    min_cells: int = 20
    n_pcs: int = 4
    information_at: int | None = None
    probe: ProbeSettings = ProbeSettings()

    def __post_init__(self):
        if self.steps < 1:
            raise NCAError(f"steps must be >= 1, got {self.steps}")
        if not 1 <= self.every <= self.steps:
            raise NCAError(f"every must be in 1..steps={self.steps}, got {self.every}")
        if self.features not in FEATURE_SETS:
            raise NCAError(f"features must be one of {', '.join(FEATURE_SETS)}, got {self.features!r}")
        if self.replicates < 2:
            raise NCAError(f"replicates must be >= 2 (one is held out), got {self.replicates}")
        if self.information_at is not None and not 1 <= self.information_at <= self.steps:
            raise NCAError(f"information_at must be in 1..{self.steps}, got {self.information_at}")

    @property
    def analysed_steps(self) -> list[int]:
        return list(range(self.every, self.steps + 1, self.every))

    def as_dict(self) -> dict:
        return asdict(self)


def features_of(model, states: np.ndarray, features: str) -> np.ndarray:
    """Features of states [..., H, W, C] for a feature set (activations run the model)."""
    from analysis.representation.pca import state_features
    from analysis.rollouts import activations

    if features in ("hidden", "state"):
        return state_features(states, features)
    return activations(model, states, features)


def positional_from_states(model, states: np.ndarray, settings: PositionalSettings, key: jax.Array,
                           frame: BodyFrame | None = None) -> dict:
    """Probes and information over development from recorded states.

    states: [T+1, B, H, W, C] (index = step; B = replicates). frame: the body frame
    (default: ``reference_frame`` of the alpha at the last step). Returns a JSON-ready dict:
    ``frame``, ``steps`` (analysed), ``per_step`` (one entry per analysed step: ``n_cells``
    per replicate and the ``summarise_probes`` intervals, or ``null_reason``), and
    ``information`` (per-channel and per-PC bits at ``information_at``)."""
    thr = model.model_config.alive_threshold
    T1, B = states.shape[:2]
    if T1 - 1 < settings.steps:
        raise NCAError(f"states cover {T1 - 1} steps, settings ask for {settings.steps}")
    frame = frame or reference_frame(states[settings.steps, :, :, :, 3], thr)
    grid = coordinate_grid(states.shape[2:4], frame)
    per_step = []
    for t in settings.analysed_steps:
        kt = stream(key, "probes", t)
        alive = states[t, ..., 3] > thr  # [B, H, W]
        n = alive.sum((1, 2))
        entry = {"step": t, "n_cells": n.tolist()}
        if n.min() < settings.min_cells:
            entry["null_reason"] = (f"fewer than {settings.min_cells} alive cells in a replicate "
                                    f"(min {int(n.min())}): position is not decodable yet")
            per_step.append(entry)
            continue
        feats = features_of(model, states[t], settings.features)  # [B, H, W, F]
        f, y = zip(*[cells_at(feats[b], alive[b], grid, settings.max_cells, jax.random.fold_in(kt, b))
                     for b in range(B)])
        entry.update(summarise_probes(probe_scores(list(f), list(y), kt, settings.probe)))
        per_step.append(entry)
    info_t = settings.information_at or settings.steps
    info = information_at_step(model, states[info_t], grid, settings, stream(key, "information", info_t))
    info["step"] = info_t
    return {"frame": {"centroid_rc": list(frame.centroid_rc), "axis_deg": frame.axis_deg,
                      "elongation": frame.elongation, "n_alive": frame.n_alive},
            "steps": settings.analysed_steps, "per_step": per_step, "information": info}


def information_at_step(model, states_t: np.ndarray, grid: np.ndarray, settings: PositionalSettings,
                        key: jax.Array) -> dict:
    """Per-feature and per-PC bits (``feature_information``) about each coordinate at one
    step, with intervals over the held-out replicates. states_t: [B, H, W, C]; grid: [H, W, 3]."""
    from analysis.representation.pca import fit_cell_pca, min_cells

    thr = model.model_config.alive_threshold
    alive = states_t[..., 3] > thr
    if alive.sum((1, 2)).min() < settings.min_cells:
        return {"null_reason": f"fewer than {settings.min_cells} alive cells in a replicate"}
    feats = features_of(model, states_t, settings.features)
    per_rep = [cells_at(feats[b], alive[b], grid, settings.max_cells, jax.random.fold_in(key, b))
               for b in range(len(states_t))]
    F = feats.shape[-1]
    k = min(settings.n_pcs, F)
    pooled = np.concatenate([f for f, _ in per_rep])
    if len(pooled) < min_cells(k):
        return {"null_reason": "too few cells for a PCA"}
    pca = fit_cell_pca(pooled[None, :, None, :], np.ones((1, len(pooled), 1), bool), k, name=settings.features)
    f = [fb for fb, _ in per_rep]
    y = [yb for _, yb in per_rep]
    fi = feature_information(f, y, jax.random.fold_in(key, 1), settings.probe)
    pi = feature_information([pca.transform(fb) for fb in f], y, jax.random.fold_in(key, 2), settings.probe)
    bits, null, pc_bits, pc_null = fi["bits"], fi["shuffled_bits"], pi["bits"], pi["shuffled_bits"]  # [B, F|k, 3]

    def table(a):
        return [{c: interval(a[:, j, i]) for i, c in enumerate(COORDS)} for j in range(a.shape[1])]

    return {"features": settings.features, "n_features": F,
            "feature_bits": table(bits), "feature_shuffled_bits": table(null),
            "pc_bits": table(pc_bits), "pc_shuffled_bits": table(pc_null),
            "pc_explained_variance_ratio": pca.explained_variance_ratio.tolist(),
            "max_null_bits": float(np.nanmax(np.concatenate([null.ravel(), pc_null.ravel()])))}


def run_positional(model, settings: PositionalSettings, key: jax.Array) -> dict:
    """Grow ``settings.replicates`` rollouts of ``model`` from the seed and measure positional
    information over development (``positional_from_states``)."""
    from analysis.rollouts import grow_states

    states = grow_states(model, settings.steps, key, seeds=settings.replicates)
    return positional_from_states(model, states, settings, jax.random.fold_in(key, 1))


# --------------------------------------------------------------------------- held-out placements
#
# Issue 23, item 1. Fire-mask replicates of a published model are nearly identical cell by
# cell, so a probe trained on some replicates and scored on another can pass by a lookup
# "grid cell -> state": a smooth random field that is the same in every rollout but
# unrelated to the body (``fixed_field``) scores as well as the lizard under
# ``probe_scores``' leave-one-replicate-out split. The split below defeats that lookup:
# bodies are grown from seeds at different grid positions and with rotated perception (the
# article's rotation experiment, ``LoadedModel.rotated``: the body grows rotated), every
# cell is placed in its own body's frame, and probes trained on some placements are scored
# on a held-out one, where the same grid cell holds a different body position. A fixed
# random field is then a function of the wrong coordinates and must fail; a code that is a
# function of body-frame position must pass.


@dataclass(frozen=True)
class Placement:
    """Where and how a body is grown: the seed ``offset_rc`` cells (row, col) from the grid
    centre, perception rotated by ``angle_deg`` (counter-clockwise as viewed)."""

    offset_rc: tuple[int, int] = (0, 0)
    angle_deg: float = 0.0


# Four lattice angles (exact rotations of the stencil), each at two seed positions: every
# placement has its own seed position, so no two share the map grid cell -> body position,
# and the 4 angles cost 4 compiled programs (the angle is static). DIAGONAL_PLACEMENTS adds
# the non-lattice rotations of the article's experiment (the body is then not an exact
# rotation: the grid's discretisation is part of what must be generalised over).
DEFAULT_PLACEMENTS = (
    Placement((0, 0), 0.0), Placement((5, -5), 90.0), Placement((-5, 5), 180.0), Placement((5, 5), 270.0),
    Placement((-5, -5), 0.0), Placement((0, 6), 90.0), Placement((6, 0), 180.0), Placement((-6, 0), 270.0))
DIAGONAL_PLACEMENTS = (
    Placement((0, 0), 0.0), Placement((5, -5), 45.0), Placement((-5, 5), 135.0), Placement((5, 5), 225.0),
    Placement((-5, -5), 315.0), Placement((0, 6), 90.0), Placement((6, 0), 180.0), Placement((-6, 0), 270.0))


@dataclass(frozen=True)
class PlacementSettings:
    """The held-out-placement measurement.

    steps: CA steps grown; placements: the bodies (at least 3: one held out, at least 2 to
    choose k and alpha by inner cross-validation); replicates: fire-mask rollouts per
    placement (the replicates of sigma_x are placements x replicates); margin: cells added
    to the training grid on each side so translated and rotated bodies fit (grid = the
    model's grid + 2 margin); features: one of FEATURE_SETS; max_cells: cells per rollout
    (random subsample); max_train: training cells per fit; knn_ks / ridge_alphas: the
    grids inner cross-validation chooses from; null_smooth_px: the Gaussian smoothing
    (px) of the fixed random fields, the null (one null per value); null_channels:
    channels of each null field; grid: the base grid (None: the model's training grid);
    min_cells: fewer alive cells in a rollout -> a ``null_reason`` instead of numbers."""

    steps: int = 200
    placements: tuple[Placement, ...] = DEFAULT_PLACEMENTS
    replicates: int = 3
    margin: int = 8
    features: str = "hidden"
    max_cells: int = 500
    max_train: int = 4000
    knn_ks: tuple[int, ...] = (1, 3, 5, 10, 20, 50)
    ridge_alphas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
    null_smooth_px: tuple[float, ...] = (2.0, 6.0)
    null_channels: int = 12
    grid: int | None = None
    min_cells: int = 20

    def __post_init__(self):
        if self.steps < 1:
            raise NCAError(f"steps must be >= 1, got {self.steps}")
        if len(self.placements) < 3:
            raise NCAError(f"placements: need at least 3 (one held out, 2 for inner cross-validation), "
                           f"got {len(self.placements)}")
        if len(set(self.placements)) != len(self.placements):
            raise NCAError("placements: each placement must differ (a repeated one would let a lookup pass)")
        if self.replicates < 1:
            raise NCAError(f"replicates must be >= 1, got {self.replicates}")
        if self.margin < 0:
            raise NCAError(f"margin must be >= 0, got {self.margin}")
        if self.features not in FEATURE_SETS:
            raise NCAError(f"features must be one of {', '.join(FEATURE_SETS)}, got {self.features!r}")
        if not self.knn_ks or min(self.knn_ks) < 1:
            raise NCAError(f"knn_ks must be positive integers, got {self.knn_ks}")
        if not self.ridge_alphas or min(self.ridge_alphas) < 0:
            raise NCAError(f"ridge_alphas must be >= 0, got {self.ridge_alphas}")
        if self.max_cells < 10 or self.max_train < 10 or self.null_channels < 1:
            raise NCAError(f"invalid placement settings {self}")

    def as_dict(self) -> dict:
        return asdict(self)


def fixed_field(shape: tuple[int, int], channels: int, smooth_px: float, key: jax.Array) -> np.ndarray:
    """The null: a smooth random field on the grid, the same in every rollout and unrelated
    to any body. [H, W] -> [H, W, channels], each channel Gaussian-smoothed white noise
    (sd ``smooth_px``) scaled to unit sd."""
    from scipy.ndimage import gaussian_filter

    z = numpy_rng(key).standard_normal(tuple(shape) + (channels,))
    f = np.stack([gaussian_filter(z[..., j], smooth_px, mode="wrap") for j in range(channels)], -1)
    return f / f.std((0, 1), keepdims=True)


def oriented_frame(alpha: np.ndarray, threshold: float, expected_axis_deg: float) -> BodyFrame:
    """The body's own frame (``reference_frame`` of alpha [B, H, W] or [H, W]) with the long
    axis pointing the way nearest ``expected_axis_deg``: ``body_frame`` gives the axis only
    modulo 180 deg, and a rotated body's head must stay its head."""
    f = reference_frame(alpha, threshold)
    diff = (f.axis_deg - expected_axis_deg + 180.0) % 360.0 - 180.0
    axis = f.axis_deg if abs(diff) <= 90.0 else (f.axis_deg + 180.0) % 360.0
    return BodyFrame(f.centroid_rc, float(axis), f.elongation, f.n_alive)


def grow_placements(model, settings: PlacementSettings, key: jax.Array) -> dict:
    """Grow ``settings.replicates`` rollouts at every placement.

    -> {"states": [P, R, H, W, C] (after ``steps``), "grid": H}. One batched rollout per
    rotation angle (the angle is part of the compiled program, so placements sharing an
    angle share one), keyed ``stream(key, "angle", i)`` for the i-th distinct angle; the
    seed of a placement is the article's seed moved by its offset. Grid: ``settings.grid``
    (default the model's) + 2 ``margin``."""
    from nca.model import seed_state

    from analysis.rollouts import grow_states

    size = (settings.grid or model.grid_size) + 2 * settings.margin
    cfg = model.model_config
    P_, R = len(settings.placements), settings.replicates
    for pl in settings.placements:
        if max(abs(pl.offset_rc[0]), abs(pl.offset_rc[1])) >= size // 2 - 1:
            raise NCAError(f"placement offset {pl.offset_rc} leaves the {size}x{size} grid")
    seed = np.asarray(seed_state(size, size, cfg, batch=R))
    out = np.empty((P_, R, size, size, cfg.channels), np.float32)
    angles = list(dict.fromkeys(pl.angle_deg for pl in settings.placements))
    for i, angle in enumerate(angles):
        ps = [p for p, pl in enumerate(settings.placements) if pl.angle_deg == angle]
        x0 = np.concatenate([np.roll(seed, settings.placements[p].offset_rc, axis=(1, 2)) for p in ps])
        m = model.rotated(angle) if angle else model
        s = grow_states(m, settings.steps, stream(key, "angle", i), x0=x0, every=settings.steps)[-1]
        out[ps] = s.reshape((len(ps), R) + s.shape[1:])
    return {"states": out, "grid": size}


def _inner_choice(kind: str, groups_x, groups_y, grid, settings: PlacementSettings) -> tuple:
    """Choose ``kind``'s hyperparameter (k or alpha) by leave-one-group-out cross-validation
    within the training groups: the value with the highest mean R^2 (over held-out inner
    groups and the 3 coordinates). -> (chosen, {value: mean inner R^2})."""
    G = len(groups_x)
    score = {v: [] for v in grid}
    for g in range(G):
        xtr = np.concatenate([groups_x[h] for h in range(G) if h != g])
        ytr = np.concatenate([groups_y[h] for h in range(G) if h != g])
        xte, yte = groups_x[g], groups_y[g]
        if kind == "knn":
            preds = _knn_all(xtr, ytr, xte, [v for v in grid])
        else:
            preds = {v: _fit_predict("ridge", xtr, ytr, xte, ProbeSettings(ridge_alpha=v)) for v in grid}
        for v in grid:
            score[v].append(float(np.nanmean(_r2(yte, preds[v]))))
    mean = {v: float(np.mean(s)) for v, s in score.items()}
    best = max(grid, key=lambda v: (mean[v], -grid.index(v)))  # ties: the first listed
    return best, mean


def _knn_all(xtr, ytr, xte, ks) -> dict:
    """kNN predictions for several k from one neighbour query: {k: [m, 3]}."""
    kmax = min(max(ks), len(xtr))
    mu = xtr.mean(0)
    _, idx = cKDTree(xtr - mu).query(xte - mu, k=kmax)
    idx = idx.reshape(len(xte), kmax)
    cum = np.cumsum(ytr[idx], axis=1)  # [m, kmax, 3]
    return {k: cum[:, min(k, kmax) - 1] / min(k, kmax) for k in ks}


def held_out_placement_scores(features: list[np.ndarray], coords: list[np.ndarray], key: jax.Array,
                              settings: PlacementSettings = PlacementSettings()) -> dict:
    """Leave-one-placement-out probes with inner cross-validation.

    features: per placement [n_p, F] (its rollouts' cells); coords: per placement [n_p, 3]
    in that body's own frame. For each held-out placement, kNN's k and ridge's alpha are
    chosen by leave-one-placement-out cross-validation *within* the training placements
    (``_inner_choice``), the probe is refit on all training placements with that value and
    scored on the held-out one. -> per probe in ("ridge", "knn", "shuffled_ridge",
    "shuffled_knn"): ``r2``, ``rmse`` (px), ``bits`` ([P, 3]); and ``chosen``: {"knn_k": [P],
    "ridge_alpha": [P]} with ``inner_r2`` (per outer fold, {value: mean inner R^2})."""
    G = len(features)
    if G < 3 or len(coords) != G:
        raise NCAError(f"held-out placements need at least 3 placements, got {G}")
    out = {name: {m: np.full((G, 3), np.nan) for m in ("r2", "rmse", "bits")}
           for name in ("ridge", "knn", "shuffled_ridge", "shuffled_knn")}
    chosen = {"knn_k": [None] * G, "ridge_alpha": [None] * G,
              "knn_inner_r2": [None] * G, "ridge_inner_r2": [None] * G}
    feats = [np.asarray(f, np.float64) for f in features]
    ys = [np.asarray(y, np.float64) for y in coords]
    for g in range(G):
        kg = jax.random.fold_in(key, g)
        train = [h for h in range(G) if h != g]
        # subsample each training placement equally, so the inner folds see the same cells
        per = max(1, settings.max_train // len(train))
        tx, ty = [], []
        for h in train:
            s = _subsample(len(feats[h]), per, stream(kg, "subsample", h))
            tx.append(feats[h][s])
            ty.append(ys[h][s])
        k, k_scores = _inner_choice("knn", tx, ty, list(settings.knn_ks), settings)
        a, a_scores = _inner_choice("ridge", tx, ty, list(settings.ridge_alphas), settings)
        chosen["knn_k"][g], chosen["ridge_alpha"][g] = int(k), float(a)
        chosen["knn_inner_r2"][g] = {str(v): s for v, s in k_scores.items()}
        chosen["ridge_inner_r2"][g] = {str(v): s for v, s in a_scores.items()}
        xtr, ytr = np.concatenate(tx), np.concatenate(ty)
        shuffled = ytr[_permutation(len(ytr), stream(kg, "shuffle"))]
        xte, yte = feats[g], ys[g]
        ps = ProbeSettings(ridge_alpha=a, knn_k=k, max_train=max(10, len(xtr)))
        for kind in PROBES:
            for name, target in ((kind, ytr), (f"shuffled_{kind}", shuffled)):
                pred = _fit_predict(kind, xtr, target, xte, ps)
                out[name]["r2"][g] = _r2(yte, pred)
                out[name]["rmse"][g] = np.sqrt(((yte - pred) ** 2).mean(0))
                out[name]["bits"][g] = [decoding_bits(yte[:, c], pred[:, c]) for c in range(3)]
    out["chosen"] = chosen
    return out


def summarise_placement_scores(scores: dict) -> dict:
    """``held_out_placement_scores`` -> JSON-ready: the probes' intervals over held-out
    placements (as ``summarise_probes``) and the chosen hyperparameters."""
    s = summarise_probes({k: v for k, v in scores.items() if k != "chosen"})
    s["chosen"] = scores["chosen"]
    return s


# ------------------------------------------------------------ positional error (Dubuis et al.)


def body_lattice(frames: list[BodyFrame], shape: tuple[int, int], half_extent: tuple[float, float]) -> dict:
    """A 1-px lattice of body-frame points (along, across) and where each lies on every
    rollout's grid. frames: one per rollout; half_extent: (along, across) px.
    -> {"along": [Na], "across": [Nc], "rc": [R, 2, Na, Nc] (row, col) per rollout}."""
    a = np.arange(-np.floor(half_extent[0]), np.floor(half_extent[0]) + 1)
    c = np.arange(-np.floor(half_extent[1]), np.floor(half_extent[1]) + 1)
    A, Cc = np.meshgrid(a, c, indexing="ij")
    rc = []
    for f in frames:
        uv = A[..., None] * direction_vector(f.axis_deg) + Cc[..., None] * direction_vector(f.axis_deg + 90.0)
        rc.append(np.stack([f.centroid_rc[0] - uv[..., 1], f.centroid_rc[1] + uv[..., 0]]))
    return {"along": a, "across": c, "rc": np.stack(rc)}


def sample_on_lattice(maps: np.ndarray, rc: np.ndarray) -> np.ndarray:
    """Bilinear samples of feature maps [H, W, F] at lattice points rc [2, Na, Nc] ->
    [Na, Nc, F] (0 outside the grid)."""
    from scipy.ndimage import map_coordinates

    return np.stack([map_coordinates(maps[..., j], rc, order=1, mode="constant", cval=0.0)
                     for j in range(maps.shape[-1])], -1)


def shrunk_cov(x: np.ndarray) -> np.ndarray:
    """Ledoit-Wolf covariances of samples x [..., R, F] -> [..., F, F] (Ledoit & Wolf 2004,
    J. Multivar. Anal. 88:365; the formula of sklearn.covariance.ledoit_wolf, batched): the
    sample covariance (1/R) shrunk toward (its mean variance) x I, so that it can be
    inverted with fewer replicates than features. Shrinking inflates the smallest variances:
    sigma_x is then conservative (too large)."""
    x = np.asarray(x, np.float64)
    R, F = x.shape[-2:]
    xc = x - x.mean(-2, keepdims=True)
    s = np.einsum("...ri,...rj->...ij", xc, xc) / R
    mu = np.trace(s, axis1=-2, axis2=-1) / F
    x2 = xc ** 2
    beta_ = (np.einsum("...ri,...rj->...ij", x2, x2) / R - s ** 2).sum((-2, -1)) / (F * R)
    delta = ((s - mu[..., None, None] * np.eye(F)) ** 2).sum((-2, -1)) / F
    beta = np.minimum(beta_, delta)
    shrink = np.divide(beta, delta, out=np.zeros_like(delta), where=delta > 0)
    return (1 - shrink)[..., None, None] * s + (shrink * mu)[..., None, None] * np.eye(F)


def positional_error(g: np.ndarray, inside: np.ndarray, min_var: float = 1e-12) -> dict:
    """The positional error sigma_x of Dubuis, Tkacik, Wieschaus, Gregor & Bialek 2013 (PNAS
    110:16301, "Positional information, in bits", eq. 4 and SI), in two body dimensions.

    g: [R, Na, Nc, F] features of R replicate bodies at the same body-frame lattice points
    (1 px apart; axis 1 along, axis 2 across); inside: bool [Na, Nc] points inside every
    replicate body. At each point x whose four lattice neighbours are inside, the mean
    profile's derivatives D = d<g>/dx ([F, 2], central differences, per px) and the
    across-replicate covariance C ([F, F], ``shrunk_cov``, + min_var I) give the Fisher
    information of the optimal decoder under Gaussian noise, J = D^T C^-1 D, and the
    Cramer-Rao error covariance J^-1: sigma_along = sqrt(J^-1[0, 0]), sigma_across =
    sqrt(J^-1[1, 1]), sigma_radius = sqrt(e^T J^-1 e), e the unit radial direction (in 1-D
    this is their sigma_x^2 = [sum_ij g_i' (C^-1)_ij g_j']^-1). -> {"sigma": [Np, 3] px,
    "points": [Np, 2] (along, across) px}. It measures replicate-to-replicate noise only: a
    code identical in every replicate has sigma ~0 however unrelated to the body, unless
    the replicates are bodies placed differently on the grid."""
    g = np.asarray(g, np.float64)
    R, Na, Nc, F = g.shape
    if R < 2:
        raise NCAError(f"sigma_x needs at least 2 replicates, got {R}")
    inside = np.asarray(inside, bool)
    mean = g.mean(0)
    ok = np.zeros_like(inside)
    ok[1:-1, 1:-1] = (inside[1:-1, 1:-1] & inside[:-2, 1:-1] & inside[2:, 1:-1]
                      & inside[1:-1, :-2] & inside[1:-1, 2:])
    ia, ic = np.nonzero(ok)
    # central differences along and across: [Np, F, 2]
    d = np.stack([(mean[ia + 1, ic] - mean[ia - 1, ic]) / 2, (mean[ia, ic + 1] - mean[ia, ic - 1]) / 2], -1)
    c = shrunk_cov(np.moveaxis(g[:, ia, ic], 0, 1)) + min_var * np.eye(F)  # [Np, F, F]
    jf = np.einsum("nfa,nfb->nab", d, np.linalg.solve(c, d))  # [Np, 2, 2]
    det = jf[:, 0, 0] * jf[:, 1, 1] - jf[:, 0, 1] * jf[:, 1, 0]
    good = det > 1e-300
    cov = np.full_like(jf, np.nan)
    cov[good] = np.linalg.inv(jf[good])
    pts = np.stack([ia - (Na - 1) / 2, ic - (Nc - 1) / 2], -1).astype(float)
    r = np.hypot(pts[:, 0], pts[:, 1])
    e = np.divide(pts, r[:, None], out=np.full_like(pts, np.nan), where=r[:, None] > 0)
    var_r = np.einsum("na,nab,nb->n", e, cov, e)
    sig = np.sqrt(np.clip(np.stack([cov[:, 0, 0], cov[:, 1, 1], var_r], -1), 0, None))
    return {"sigma": sig, "points": pts}


def summarise_sigma(sig: np.ndarray) -> dict:
    """sigma [Np, 3] -> per coordinate: median, quartiles, fraction of points < 1 px, n points."""
    out = {}
    for i, c in enumerate(COORDS):
        v = sig[:, i][np.isfinite(sig[:, i])]
        out[c] = ({"median": float(np.median(v)), "q25": float(np.quantile(v, 0.25)),
                   "q75": float(np.quantile(v, 0.75)), "frac_below_1px": float((v < 1).mean()), "n_points": int(v.size)}
                  if v.size else {"median": None, "n_points": 0})
    return out


def _frame_dict(f: BodyFrame) -> dict:
    return {"centroid_rc": list(f.centroid_rc), "axis_deg": f.axis_deg, "elongation": f.elongation,
            "n_alive": f.n_alive}


def placement_frames(alpha: np.ndarray, placements, threshold: float) -> list[BodyFrame]:
    """Each placement's own body frame. alpha: [P, R, H, W] -> P frames, axes oriented
    (``oriented_frame``) the way the first placement's axis turns under each placement's
    rotation relative to the first."""
    f0 = reference_frame(alpha[0], threshold)
    return [oriented_frame(alpha[p], threshold, f0.axis_deg + pl.angle_deg - placements[0].angle_deg)
            for p, pl in enumerate(placements)]


def placement_analysis(model, states: np.ndarray, settings: PlacementSettings, key: jax.Array) -> dict:
    """Probes on held-out placements, with the fixed-random-field null, and sigma_x.

    states: [P, R, H, W, C] (``grow_placements``). For the model's features and for each
    null (``fixed_field`` sampled at the very same cells, one per ``null_smooth_px``):
    ``held_out_placement_scores`` (summarised: intervals over the P held-out placements)
    and the positional error sigma_x (``positional_error``) over the P x R rollouts aligned
    in their body frames (median and quartiles over body points: a bootstrap over rollouts
    would duplicate rollouts and so shrink the very variance sigma_x measures; intervals
    come over independently trained models, bench/development.py --only placement); per
    channel, ``channel_bits`` (``feature_information``: a 1-D kNN decoder of each channel,
    held-out placements, intervals over them) and the largest channel mean per coordinate;
    ``replicate_split``: the old leave-one-replicate-out probes (``probe_scores``, default
    settings) on placement 0's rollouts and the same cells, for comparison. JSON-ready."""
    thr = model.model_config.alive_threshold
    P_, R, H, W, _ = states.shape
    alpha = states[..., 3]
    n_alive = (alpha > thr).sum((2, 3))  # [P, R]
    if n_alive.min() < settings.min_cells:
        return {"null_reason": f"fewer than {settings.min_cells} alive cells in a rollout (min {int(n_alive.min())}): "
                               "no body to place", "n_alive": n_alive.tolist()}
    frames = placement_frames(alpha, settings.placements, thr)
    feats = features_of(model, states.reshape((P_ * R,) + states.shape[2:]), settings.features)
    feats = feats.reshape((P_, R) + feats.shape[1:])
    nulls = {f"fixed_field_{s:g}px": fixed_field((H, W), settings.null_channels, s, stream(key, "null_field", i))
             for i, s in enumerate(settings.null_smooth_px)}
    codes = {"model": feats, **{n: np.broadcast_to(f, (P_, R, H, W, f.shape[-1])) for n, f in nulls.items()}}
    # the cells: the same rows/cols for the model and every null (matched in every unit)
    cells = []
    for p in range(P_):
        grid = coordinate_grid((H, W), frames[p])
        rc = []
        for r in range(R):
            rows, cols = np.nonzero(alpha[p, r] > thr)
            s = _subsample(len(rows), settings.max_cells, stream(key, "cells", p, r))
            rc.append((rows[s], cols[s]))
        cells.append((rc, grid))
    n_cells = [[int(len(rows)) for rows, _ in rc] for rc, _ in cells]
    # sigma_x: a 1-px lattice over the first placement's body, sampled in every rollout's frame
    rows, cols = np.nonzero((alpha[0] > thr).any(0))
    ext = np.abs(frame_coords(rows, cols, frames[0])[:, :2]).max(0) + 1
    lat = body_lattice([frames[p] for p in range(P_) for _ in range(R)], (H, W), tuple(ext))
    a_lat = np.stack([sample_on_lattice(alpha[p, r][..., None], lat["rc"][p * R + r])[..., 0]
                      for p in range(P_) for r in range(R)])
    inside = (a_lat > thr).all(0)
    out = {"frames": [_frame_dict(f) for f in frames], "n_cells": n_cells,
           "placements": [{"offset_rc": list(pl.offset_rc), "angle_deg": pl.angle_deg} for pl in settings.placements],
           "n_placements": P_, "replicates": R, "grid": H, "lattice_points_inside": int(inside.sum())}
    for name, code in codes.items():
        f = [np.concatenate([code[p, r][rows, cols] for r, (rows, cols) in enumerate(cells[p][0])]) for p in range(P_)]
        y = [np.concatenate([cells[p][1][rows, cols] for rows, cols in cells[p][0]]) for p in range(P_)]
        scores = held_out_placement_scores(f, y, stream(key, "probes"), settings)  # same cells, same key: matched
        g = np.stack([sample_on_lattice(np.asarray(code[p, r], np.float64), lat["rc"][p * R + r])
                      for p in range(P_) for r in range(R)])  # [P R, Na, Nc, F]
        pe = positional_error(g, inside)
        sig = summarise_sigma(pe["sigma"])
        fi = feature_information(f, y, stream(key, "channel_bits"), ProbeSettings(max_train=settings.max_train))
        chan = [{c: interval(fi["bits"][:, j, i]) for i, c in enumerate(COORDS)} for j in range(fi["bits"].shape[1])]
        # the old split on the same cells, for comparison: placement 0's rollouts, one held out
        # (what ``probe_scores`` does over replicates; a lookup passes it)
        old = (summarise_probes(probe_scores(
            [code[0, r][rows, cols] for r, (rows, cols) in enumerate(cells[0][0])],
            [cells[0][1][rows, cols] for rows, cols in cells[0][0]], stream(key, "replicate_split")))
            if R >= 2 else {"null_reason": "one rollout per placement: no replicate to hold out"})
        out[name] = {"probes": summarise_placement_scores(scores), "replicate_split": old, "sigma_x": sig,
                     "channel_bits": chan,
                     "channel_bits_max_mean": {c: float(np.nanmax(np.nanmean(fi["bits"][..., i], 0)))
                                               for i, c in enumerate(COORDS)},
                     "channel_shuffled_bits_max": float(np.nanmax(fi["shuffled_bits"]))}
    return out


def positional_by_placement(model, settings: PlacementSettings, key: jax.Array) -> dict:
    """Grow the placements (``grow_placements``) and measure (``placement_analysis``)."""
    from analysis.rollouts import euclidean

    grown = grow_placements(model, settings, stream(key, "grow"))
    # hex grid: measured in the body's Euclidean frame (the axial array is sheared)
    return placement_analysis(model, euclidean(grown["states"], model.model_config), settings,
                              stream(key, "analysis"))
