"""A spatial null for the axis measures: is a map's best directional (or radial) association
more than a random smooth field on the same body would give?

Pure NumPy. Why a null is needed (issue 13): random smooth fields with no axis at all, on the
lizard's own body, reach a directional rank association of 0.5 in 20 % (smoothness 3 cells)
to 85 % (10 cells) of draws, because the statistic is a maximum over 72 directions and
neighbouring cells are correlated.

**The null: surrogate maps with the map's own spatial autocorrelation, on the body mask**
(the approach of Burt, Helmer, Shinn, Anticevic & Murray 2020, "Generative modeling of brain
maps with spatial autocorrelation", NeuroImage 220:117038, BrainSMASH). Each surrogate is
Gaussian-smoothed white noise on the grid (scale sigma), mixed with a white "nugget", and
restricted to the alive cells. The test statistic is recomputed on every surrogate with the
**maximum over directions taken inside the null** (each surrogate's own best direction), so
the search over 72 directions is paid for. p = (1 + #{surrogate >= observed}) / (1 + S)
(Phipson & Smyth 2010).

How the autocorrelation is matched -- three choices, each validated (tests/test_axis_null.py,
bench/dissection.py --validate):

1. *Texture, not variogram.* BrainSMASH matches the variogram. A gradient has a variogram
   that keeps rising over the body; the field that matches it is so smooth that it is itself
   nearly a random gradient, and the test can then never reject a gradient (measured: a ramp
   with 0.3 sd noise found in 52 % of draws). We match the *second-difference structure
   function* D2(h) = mean (z(x-h) - 2 z(x) + z(x+h))^2 at lags up to the 25th percentile of
   the cells' pairwise distances (BrainSMASH's pv = 25), computed after removing the map's
   best monotone profile along its best direction (so a sharp split is trend, not texture).
   A linear trend has no second differences: a gradient cannot make its own null smoother.
2. *Consistent fitting.* Each scale's reference D2 curve is learnt on this body from fields
   of that scale passed through the same detrending, so a field of scale sigma is matched to
   sigma whatever the detrending removed. Model: D2 = a D2_sigma + b D2_white, a, b >= 0,
   least squares; smooth share w = a / (a + b).
3. *The scale is uncertain.* One small body holds only a few patches of a smooth field, so
   the fitted scale scatters (for a 10-cell field, estimates from 4 to 24), and an
   underestimate makes the null too rough (anti-conservative: 13 % false positives when
   using the point estimate). The reported p-value is the largest over the scales from the
   fitted one up to ``scale_range`` (2) times it, each with its own fitted w (a p-value
   maximised over a range of the nuisance parameter, Berger & Boos 1994, JASA 89:1012).

Why not the spin test (Alexander-Bloch et al. 2018, NeuroImage 178:540-551: rotations and
reflections of the map about the centroid)? Our statistic is a maximum over all directions,
and rotating a map about its centroid only moves its best direction: on a disc every spun map
has exactly the observed statistic (no power at all); on a body that is not a disc, rotation
moves values off the mask and leaves cells with none. A spin null suits a statistic tied to
one fixed direction, not a search over directions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .axes import COARSE_STEP_DEG, direction_vector, rankdata, view_coords

# Named PRNG streams (np.random.SeedSequence spawn keys): one per use of randomness.
STREAM_SURROGATES = 1
STREAM_FIT_FIELDS = 2
STREAM_BOOTSTRAP = 3

# Smooth shares the surrogates are drawn at (a fitted share is rounded up to the next one).
WEIGHT_GRID = np.array([0.0, 0.25, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 1.0])


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks per column, ties averaged (``axes.rankdata``) -- but a double argsort when a
    column has no ties (surrogates never tie; 2-3x faster). x: [n, k] -> [n, k] float."""
    srt = np.sort(x, axis=0)
    if (np.diff(srt, axis=0) != 0).all():
        r = np.empty_like(x, dtype=np.float64)
        order = np.argsort(x, axis=0)
        np.put_along_axis(r, order, np.arange(1, x.shape[0] + 1, dtype=np.float64)[:, None], axis=0)
        return r
    return rankdata(x, axis=0)


@dataclass(frozen=True)
class NullSettings:
    """How the spatial null is drawn.

    n_surrogates: surrogate maps per tested map (p-values are multiples of 1/(n+1): 199 gives
    a smallest p of 0.005, below a Holm threshold of 0.05/6);
    sigmas_px: smoothness scales (sd of the Gaussian kernel, cells) the fit chooses from;
    max_lag_quantile: the texture is matched at lags up to this quantile of the cells'
    pairwise distances (BrainSMASH's pv = 25 %);
    n_fit_fields: fields per scale used to learn each scale's texture on this body;
    min_cells: fewer alive cells than this: no null (p-values are null with a reason);
    scale_range: the p-value is the largest over the scales from the fitted one up to this
    many times it (Berger & Boos 1994; see the module doc);
    detrend: measure the texture after the map's best monotone profile (see the module doc).
    """

    n_surrogates: int = 199
    sigmas_px: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0)
    max_lag_quantile: float = 0.25
    n_fit_fields: int = 8
    min_cells: int = 30
    scale_range: float = 2.0
    detrend: bool = True


def _standardise_cols(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0, keepdims=True)
    sd = x.std(0, keepdims=True)
    return x / np.where(sd > 0, sd, 1.0)


def second_differences(values: np.ndarray, mask: np.ndarray, max_lag: int) -> np.ndarray:
    """Second-difference structure function at integer lags 1..max_lag along rows and columns.

    values: [k, H, W]; mask: bool [H, W] -> [k, max_lag]: mean over cell triples all in the
    mask, at offsets -L, 0, +L along a row or a column, of (z(x-L) - 2 z(x) + z(x+L))^2.
    A linear trend contributes exactly nothing (its second differences are 0), so the curve
    measures the map's texture -- the smoothness scale of what is *not* a gradient -- and a
    strong gradient cannot make its own null smoother.
    """
    out = np.zeros((values.shape[0], max_lag))
    for lag in range(1, max_lag + 1):
        tot, n = 0.0, 0
        for v, m in ((values, mask), (values.transpose(0, 2, 1), mask.T)):
            d = v[:, :-2 * lag, :] - 2 * v[:, lag:-lag, :] + v[:, 2 * lag:, :]
            mm = m[:-2 * lag, :] & m[lag:-lag, :] & m[2 * lag:, :]
            tot = tot + (d * d * mm).sum((1, 2))
            n += int(mm.sum())
        out[:, lag - 1] = tot / max(n, 1)
    return out


class BodyNull:
    """Surrogate generator and test statistics for one body (alive mask).

    mask: bool [H, W]; centre_uv: [2] image-view centroid. Precomputes the ranks of the cells'
    projections on the 36 coarse directions of a half circle (the association at theta + 180
    is minus that at theta) and of their distance from the centre; learns each smoothness
    scale's texture on this mask on first use; keeps one bank of surrogates per scale.
    """

    def __init__(self, mask: np.ndarray, centre_uv: np.ndarray, settings: NullSettings = NullSettings(),
                 seed: int = 0, key: tuple[int, ...] = ()):
        self.mask = np.asarray(mask, bool)
        self.settings = settings
        self.seed = int(seed)
        self.key = tuple(int(x) for x in key)  # e.g. (step, replicate): this body's own streams
        rows, cols = np.nonzero(self.mask)
        self.rows, self.cols = rows, cols
        self.n = len(rows)
        self.uv = view_coords(rows, cols)
        self.centre = np.asarray(centre_uv, np.float64)
        self.coarse = np.arange(0.0, 360.0, COARSE_STEP_DEG)
        # only 0-180: the association at theta + 180 is minus that at theta; max |rho| over
        # half the circle = max rho over the whole circle (for the signed direction).
        proj = direction_vector(self.coarse[: len(self.coarse) // 2]) @ self.uv.T  # [36, n]
        self._rank_proj = _standardise_cols(rankdata(np.round(proj, 9), axis=1).T).T / np.sqrt(self.n)
        dist = np.round(np.hypot(*(self.uv - self.centre).T), 9)
        self._rank_dist = _standardise_cols(rankdata(dist)[:, None])[:, 0] / np.sqrt(self.n)
        self.proj_dist = dist
        if self.n >= 2:
            sub = self.uv[:: max(1, self.n // 600)]
            d = np.hypot(*(sub[:, None, :] - sub[None, :, :]).transpose(2, 0, 1))
            q = np.quantile(d[np.triu_indices(len(sub), 1)], settings.max_lag_quantile) if len(sub) > 1 else 1.0
        else:
            q = 1.0
        self.max_lag = int(np.clip(np.round(q), 2, max(2, min(self.mask.shape) // 2)))
        self._scale_tex = None
        self._smooth_bank: dict = {}
        self._white = None
        self._null_cache: dict = {}

    # ---------------------------------------------------------------- statistics
    def statistics(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(best directional Spearman over the 72 coarse directions, |radial Spearman|).

        values: [n, k] maps at the alive cells -> ([k], [k]). The same statistic is used on
        the map and on every surrogate (the max over directions inside the null).
        """
        r = _standardise_cols(_ranks(values)) / np.sqrt(values.shape[0])
        rho = self._rank_proj @ r  # [36, k]
        return np.abs(rho).max(0), np.abs(self._rank_dist @ r)

    # ---------------------------------------------------------------- surrogates
    def _rng(self, stream: int, *extra: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(stream, *self.key, *extra)))

    def smooth_fields(self, sigma: float, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` Gaussian-smoothed white-noise fields (kernel sd ``sigma`` cells) at the
        alive cells, each standardised over them -> [n, count]. Drawn on the body's bounding
        box padded by 3 sigma and smoothed by FFT (no wrap-around reaches the body)."""
        import scipy.fft

        pad = int(np.ceil(3 * sigma))
        r0, c0 = self.rows.min(), self.cols.min()
        bh, bw = self.rows.max() - r0 + 1, self.cols.max() - c0 + 1
        hp = scipy.fft.next_fast_len(int(bh) + 2 * pad, real=True)
        wp = scipy.fft.next_fast_len(int(bw) + 2 * pad, real=True)
        noise = rng.standard_normal((count, hp, wp), dtype=np.float32)
        fy = np.fft.fftfreq(hp)[:, None]
        fx = np.fft.rfftfreq(wp)[None, :]
        transfer = np.exp(-2 * (np.pi * sigma) ** 2 * (fx ** 2 + fy ** 2)).astype(np.float32)
        f = scipy.fft.irfft2(scipy.fft.rfft2(noise) * transfer, s=(hp, wp))
        vals = f[:, pad + self.rows - r0, pad + self.cols - c0].T.astype(np.float64)  # [n, count]
        return _standardise_cols(vals)

    def coarse_direction(self, values: np.ndarray) -> np.ndarray:
        """The 5-deg-grid direction of the best Spearman association. [n, k] -> [k] deg."""
        r = _standardise_cols(rankdata(values, axis=0)) / np.sqrt(values.shape[0])
        rho = self._rank_proj @ r
        i = np.abs(rho).argmax(0)
        return np.mod(self.coarse[i] + np.where(rho[i, np.arange(values.shape[1])] < 0, 180.0, 0.0), 360.0)

    def detrend(self, values: np.ndarray) -> np.ndarray:
        """Residual of each map [n, k] after its best monotone profile (isotonic regression,
        increasing or decreasing) along its coarse best direction or in the distance from the
        centre, whichever leaves less: a sharp split or a core-periphery profile is a trend, not
        texture. Applied the same way to the fields that the scales are learnt from, so the
        fit stays consistent."""
        if not self.settings.detrend:
            return values
        direction = self.coarse_direction(values)  # the signed direction: values increase along it
        d = self.proj_dist - self.proj_dist.mean()
        out = []
        for j in range(values.shape[1]):
            sign = 1.0 if float((values[:, j] - values[:, j].mean()) @ d) >= 0 else -1.0
            out.append(_monotone_residual(values[:, j], (self.uv @ direction_vector(direction[j]), sign * d)))
        return np.stack(out, 1)

    def map_texture(self, values: np.ndarray) -> np.ndarray:
        """Second-difference structure function of maps [n, k] (standardised) -> [k, max_lag]."""
        z = _standardise_cols(values)
        grid = np.zeros((values.shape[1],) + self.mask.shape)
        grid[:, self.rows, self.cols] = z.T
        return second_differences(grid, self.mask, self.max_lag)

    def scale_textures(self) -> np.ndarray:
        """[len(sigmas) + 1, max_lag]: the second-difference curve on this mask of unit-variance
        fields of each smoothness scale, and (last row) of white noise."""
        if self._scale_tex is None:
            s = self.settings
            rng = self._rng(STREAM_FIT_FIELDS)
            rows = [self.map_texture(self.detrend(self.smooth_fields(sig, s.n_fit_fields, rng))).mean(0)
                    for sig in s.sigmas_px]
            rows.append(self.map_texture(self.detrend(rng.standard_normal((self.n, s.n_fit_fields)))).mean(0))
            self._scale_tex = np.stack(rows)
        return self._scale_tex

    def fit(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per map, the smoothness scale and smooth share of its texture: values [n, k] ->
        (sigma [k], weight [k] in [0, 1], each scale's own best weight [n_scales, k]). Model: D2(h) = a D2_sigma(h) + b D2_white(h) with
        a, b >= 0 (the variances of a smooth part and a white nugget), least squares over the
        lags, the scale with the smallest residual; weight = a / (a + b)."""
        g = self.map_texture(self.detrend(values))  # [k, L]
        tex = self.scale_textures()
        white = tex[-1]
        k, m = g.shape[0], len(self.settings.sigmas_px)
        best_r, best_s, best_w = np.full(k, np.inf), np.zeros(k), np.zeros(k)
        weights = np.zeros((m, k))
        for i in range(m):
            scale_r = np.full(k, np.inf)
            design = np.stack([tex[i], white], 1)  # [L, 2]
            coef = np.linalg.lstsq(design, g.T, rcond=None)[0]  # [2, k]
            coef = np.maximum(coef, 0.0)
            # refit a single term where the other was clipped to 0
            only_a = np.maximum((g @ tex[i]) / (tex[i] @ tex[i]), 0.0)
            only_b = np.maximum((g @ white) / (white @ white), 0.0)
            cands = [coef, np.stack([only_a, np.zeros(k)]), np.stack([np.zeros(k), only_b])]
            for c in cands:
                r = ((g - (design @ c).T) ** 2).sum(1)
                tot = c[0] + c[1]
                wi = np.where(tot > 0, c[0] / np.where(tot > 0, tot, 1), 0.0)
                weights[i] = np.where(r < scale_r, wi, weights[i])
                scale_r = np.minimum(r, scale_r)
                better = r < best_r - 1e-15
                best_r = np.where(better, r, best_r)
                best_s = np.where(better, self.settings.sigmas_px[i], best_s)
                best_w = np.where(better, wi, best_w)
        return best_s, best_w, weights

    def _bank(self, sigma: float) -> np.ndarray:
        """n_surrogates smooth fields of one scale at the alive cells [n, S] (drawn once per
        body and scale; every map of the body tested at that scale shares them)."""
        if sigma not in self._smooth_bank:
            i = list(self.settings.sigmas_px).index(sigma)
            rng = self._rng(STREAM_SURROGATES, i)
            self._smooth_bank[sigma] = self.smooth_fields(sigma, self.settings.n_surrogates, rng)
        return self._smooth_bank[sigma]

    def surrogates(self, sigma: float, weight: float) -> np.ndarray:
        """[n, S] surrogate maps at the alive cells: sqrt(w) smooth + sqrt(1-w) white."""
        if self._white is None:
            self._white = self._rng(STREAM_SURROGATES, 1000).standard_normal((self.n, self.settings.n_surrogates))
        return np.sqrt(weight) * self._bank(sigma) + np.sqrt(1.0 - weight) * self._white

    def null_statistics(self, sigma: float, weight: float) -> tuple[np.ndarray, np.ndarray]:
        """The statistics of the surrogates of (sigma, weight rounded *up* to WEIGHT_GRID):
        ([S], [S]). Rounding up makes the surrogates smoother, so the test only gets more
        conservative, and the few grid values let the maps of a body share surrogates."""
        key = (float(sigma), float(WEIGHT_GRID[np.searchsorted(WEIGHT_GRID, float(weight) - 1e-9)]))
        if key not in self._null_cache:
            self._null_cache[key] = self.statistics(self.surrogates(*key))
        return self._null_cache[key]

    # ---------------------------------------------------------------- test
    def test(self, values: np.ndarray) -> dict:
        from threadpoolctl import threadpool_limits

        # Many small matrix products: OpenBLAS's threads cost far more than they save here
        # (measured: 14 ms -> 0.2 ms CPU for one [36, 700] x [700, 199] product on 2 cores).
        with threadpool_limits(1, "blas"):
            return self._test(values)

    def _test(self, values: np.ndarray) -> dict:
        """Spatial-null p-values of k maps on this body.

        values: [n, k]. Returns {"association_stat" [k] (best Spearman over the 72 coarse
        directions), "radial_stat" [k] (|radial Spearman|), "p_value" [k], "radial_p_value"
        [k], "sigma_px" [k] (fitted scale, cells), "smooth_weight" [k], "n_surrogates"}. p = (1 + #{surrogate stat >= observed}) / (1 + n_surrogates)
        (Phipson & Smyth 2010: a permutation p-value is never 0).
        """
        values = np.asarray(values, np.float64)
        k = values.shape[1]
        s = self.settings
        obs_ax, obs_rad = self.statistics(values)
        sig, w, weights = self.fit(values)
        sigmas = np.asarray(s.sigmas_px)
        p_ax, p_rad = np.zeros(k), np.zeros(k)
        for j in range(k):
            # Berger & Boos (1994): the p-value maximised over a range of the nuisance
            # parameter -- the scale is estimated from one small body and an underestimate
            # makes the null too rough, hence anti-conservative; the range runs up to
            # ``scale_range`` times the fitted scale.
            for i in np.flatnonzero((sigmas >= sig[j] - 1e-9) & (sigmas <= s.scale_range * sig[j] + 1e-9)):
                na, nr = self.null_statistics(sigmas[i], weights[i, j])
                p_ax[j] = max(p_ax[j], (1 + (na >= obs_ax[j] - 1e-12).sum()) / (1 + s.n_surrogates))
                p_rad[j] = max(p_rad[j], (1 + (nr >= obs_rad[j] - 1e-12).sum()) / (1 + s.n_surrogates))
        return {"association_stat": obs_ax, "radial_stat": obs_rad, "p_value": p_ax, "radial_p_value": p_rad,
                "sigma_px": sig, "smooth_weight": w, "n_surrogates": s.n_surrogates}


def _monotone_residual(y: np.ndarray, projs) -> np.ndarray:
    """y minus its best non-decreasing function of any of the projections (isotonic
    regression; each projection oriented so that y tends to increase along it); the smallest
    residual. y: [n]; projs: sequence of [n] -> [n]."""
    from .axes import isotonic

    best, best_sse = None, np.inf
    for proj in projs:
        order = np.argsort(proj, kind="stable")
        ys = y[order]
        r = np.empty_like(y)
        r[order] = ys - isotonic(ys)
        sse = float(r @ r)
        if sse < best_sse:
            best, best_sse = r, sse
    return best


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (Holm 1979). p: [k] -> [k] (NaN stays NaN)."""
    p = np.asarray(p, np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out


# --------------------------------------------------------------------------- direction CI


def direction_ci(maps: list[np.ndarray], uvs: list[np.ndarray], point_deg: float, n_boot: int = 100,
                 level: float = 0.95, seed: int = 0, key: tuple[int, ...] = (),
                 starts: list[float] | None = None) -> list[float]:
    """Bootstrap interval of a map's direction over cells and fire-mask seeds.

    maps: per seed the map at its alive cells [n_i]; uvs: per seed their image-view
    positions [n_i, 2]; point_deg: the reported direction (first seed); starts: each seed's
    own direction (``best_direction`` of its map; computed when None); seed, key: the PRNG
    stream (SeedSequence(seed, spawn_key=(STREAM_BOOTSTRAP, *key))). Each of ``n_boot``
    draws takes a seed at random and resamples its cells with replacement (as weights), then
    finds the direction as ``analysis.axes.best_direction`` does (coarse Spearman start on
    that seed's map, then ``refine_direction(fast=True)`` with the bootstrap weights). Returns [lo, hi]
    in degrees: the central ``level`` interval of the draws' signed offsets from point_deg,
    added to point_deg; the interval runs counter-clockwise from lo to hi (hi may exceed 360
    or lo fall below 0 so that lo <= point <= hi is visible).
    Cells are not independent in a smooth map, so this interval covers the sampling of cells
    and of fire masks, not the spatial autocorrelation (the p-value covers that).
    """
    from threadpoolctl import threadpool_limits

    from .axes import best_direction, refine_direction, wrap180

    with threadpool_limits(1, "blas"):
        return _direction_ci(maps, uvs, point_deg, n_boot, level, seed, key, starts, best_direction,
                             refine_direction, wrap180)


def _direction_ci(maps, uvs, point_deg, n_boot, level, seed, key, starts, best_direction, refine_direction, wrap180):
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STREAM_BOOTSTRAP, *key)))
    which = rng.integers(0, len(maps), n_boot)
    draws = []
    for i in range(len(maps)):
        b = int((which == i).sum())
        if b == 0:
            continue
        y, uv = np.asarray(maps[i], np.float64), uvs[i]
        start = point_deg if i == 0 else (starts[i] if starts is not None else best_direction(y[:, None], uv)[0][0])
        counts = rng.multinomial(len(y), np.full(len(y), 1.0 / len(y)), size=b).astype(np.float64)
        draws.append(refine_direction(y, uv, start, counts, fast=True))
    off = np.asarray(wrap180(np.concatenate(draws) - point_deg), np.float64)
    lo, hi = np.percentile(off, [50 * (1 - level), 50 * (1 + level)])
    return [float(point_deg + lo), float(point_deg + hi)]


# --------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class KindRule:
    """When a component gets a kind (documented in docs/pca.md and shown in report.json).

    alpha: family-wise error rate per body and test, Holm-corrected over its k components
    (the axial p-values are one family, the radial ones another); min_agreement: the fraction of fire-mask seeds that
    must give the same kind, else the kind is "none" (unstable);
    along_max_deg, min_elongation: as in ``analysis.axes.AxisThresholds``.
    """

    alpha: float = 0.05
    min_agreement: float = 0.8
    along_max_deg: float = 45.0
    min_elongation: float = 1.15


def body_kinds(p_axial: np.ndarray, p_radial: np.ndarray, assoc_stat: np.ndarray, radial_stat: np.ndarray,
               angle_to_axis: np.ndarray, elongation: float, rule: KindRule = KindRule()) -> tuple[list[str], list]:
    """Kinds of the k components of one body from their null p-values. All arrays [k].

    A component is axial when its axial p, Holm-adjusted over the k components, is < alpha,
    radial when its radial one is; when both, the larger statistic wins (as ``analysis.axes.classify``). An axial
    component is along-axis within along_max_deg of the long axis, else across-axis; on a
    round body (elongation < min_elongation) it gets "none" with a reason (there is no axis
    to be along or across). NaN p-values (no null): "none" with a reason.
    Returns (kinds [k], reasons [k] of str or None).
    """
    adj_ax, adj_rad = holm(p_axial), holm(p_radial)
    k = len(p_axial)
    kinds, reasons = [], []
    for j in range(k):
        if np.isnan(p_axial[j]) or np.isnan(p_radial[j]):
            kinds.append("none")
            reasons.append("no null: too few alive cells")
            continue
        ax, rad = adj_ax[j] < rule.alpha, adj_rad[j] < rule.alpha
        if rad and (not ax or radial_stat[j] > assoc_stat[j]):
            kinds.append("radial")
            reasons.append(None)
        elif ax:
            if elongation < rule.min_elongation:
                kinds.append("none")
                reasons.append(f"axial but the body is round (elongation {elongation:.2f} < "
                               f"{rule.min_elongation}): no long axis to be along or across")
            else:
                kinds.append("along-axis" if angle_to_axis[j] <= rule.along_max_deg else "across-axis")
                reasons.append(None)
        else:
            kinds.append("none")
            reasons.append(f"not significant (Holm-adjusted p {min(adj_ax[j], adj_rad[j]):.3g} >= {rule.alpha})")
    return kinds, reasons


def agreed_kind(kinds_per_seed: list[str], rule: KindRule = KindRule()) -> tuple[str, float, str | None]:
    """The kind over fire-mask seeds: the most common kind if at least min_agreement of the
    seeds give it, else "none". Returns (kind, kind_agreement = fraction of seeds giving the
    returned kind's modal value, reason or None)."""
    values, counts = np.unique(np.asarray(kinds_per_seed), return_counts=True)
    i = int(np.argmax(counts))
    agreement = float(counts[i] / len(kinds_per_seed))
    if agreement >= rule.min_agreement:
        return str(values[i]), agreement, None
    return "none", agreement, (f"unstable: the most common kind ({values[i]}) in only {counts[i]} of "
                               f"{len(kinds_per_seed)} seeds (< {rule.min_agreement:.0%})")
