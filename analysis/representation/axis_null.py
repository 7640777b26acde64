"""A spatial null for the axis measures: is a map's best directional (or radial, or
head-tail / left-right) association more than a random field with the map's own spatial
autocorrelation, on the same body, would give?

Pure NumPy. Why a null is needed (issue 13): random smooth fields with no axis at all, on the
lizard's own body, reach a directional rank association of 0.5 in 20 % (smoothness 3 cells)
to 85 % (10 cells) of draws, because the statistic is a maximum over 72 directions and
neighbouring cells are correlated.

**The null: surrogate maps whose variogram matches the map's over lags up to the body's
size, on the body mask** (Burt, Helmer, Shinn, Anticevic & Murray 2020, "Generative modeling
of brain maps with spatial autocorrelation", NeuroImage 220:117038, BrainSMASH: surrogates
matched to the empirical variogram). As in BrainSMASH the surrogate is a mixture of smoothing
scales, here fitted at all scales at once: the map's empirical variogram (of its normal
scores, computed exactly over every pair of body cells by FFT) is fitted, by non-negative
least squares, as a sum of the exact variograms on this body of Gaussian-smoothed noise at
each scale of ``sigmas_px`` (up to half the body's length) plus a white nugget. A surrogate
is white noise filtered once with the mixture's transfer function (the Gaussian field with
that covariance) and restricted to the alive cells.

**Anisotropy aligned with the body** (issue 23, round 3): the kernels are Gaussians aligned
with the body's long axis whose sds along and across it are any two scales at most
``max_anisotropy`` (4) apart, and the variogram is matched separately over lag vectors within
45 deg of the axis and over the others. With isotropic kernels only, a field with no gradient
that is correlated longer along the body than across it (it varies across the body, as a
left-right ramp does) was called an across-axis gradient in 19-31/120 maps on the lizard's
body at nominal 5 %. The price: a planted ramp across the body is matched by such surrogates
too, so the across-axis test finds it only when it dominates the texture (module tests and
docs/validation/spatial_null.md).

Issue 23 (item 3) replaced the issue-13 null, which matched only the texture (second
differences at short lags, one scale): fields with a fine texture plus a broad component
were called axial in 33-46 % of maps and exponential fields of length 10-20 in 9-21 %, at
nominal 5 %. Matching the whole variogram makes the null calibrated on field families it was
not built from (``analysis.representation.null_battery``; bench/dissection.py --only battery); the price is
that a broad gradient is matched by broad surrogates, so the any-direction test has little
power for a pure ramp. The **fixed-axis statistics** ask the biologist's own question with the
same surrogates: is there a gradient along the body's long (head-tail) axis, or across it?
A surrogate's broad component points anywhere, a fixed-axis statistic only sees its
projection, so those tests keep power the any-direction search pays away.

Statistics (the same on the map and on every surrogate, each surrogate with its own best
direction: the maximum over 72 directions is taken inside the null): best |Spearman| with
the position projected on a direction; |Spearman| with the distance from the centroid;
|Spearman| with the projection on the body's long axis (``along``) and on its perpendicular
(``across``).

**Sequential Monte-Carlo p-values** (Besag & Clifford 1991, Biometrika 78:301): surrogates
are drawn in blocks; a statistic's draws stop once ``stop_after`` (h) surrogates reach it,
with p = h / l (l surrogates drawn by then); a statistic that never gets h within
``n_surrogates`` (m - 1) draws gets p = (g + 1) / m (g of them reached it). The smallest
attainable p is 1 / (n_surrogates + 1) (0.001 at the default 999: Holm over 12 tests at 0.05
needs p < 0.0042), and a clearly non-significant map costs about h / p surrogates.

Why not the spin test (Alexander-Bloch et al. 2018, NeuroImage 178:540-551)? Rotating a map
about its centroid only moves its best direction: on a disc every spun map has exactly the
observed any-direction statistic; on a body that is not a disc, rotation moves values off
the mask.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from analysis.representation.axes import COARSE_STEP_DEG, direction_vector, rankdata, view_coords

# Named PRNG streams (np.random.SeedSequence spawn keys): one per use of randomness.
STREAM_SURROGATES = 1
STREAM_BOOTSTRAP = 3
STREAM_DIRECTIONS = 4  # the random directions of the cross-model test's re-directed planes
STREAM_WIDE = 5  # the surrogate noise of a body's wide twin (``BodyNull.wide``)

STATISTICS = ("any", "radial", "along", "across")  # the order of the arrays of ``statistics``


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

    n_surrogates: the most surrogates per map (m - 1 of Besag & Clifford; the smallest p is
    1 / (n_surrogates + 1));
    stop_after: h of the sequential test: a statistic's draws stop once h surrogates reach
    it (0: never stop early, the plain Monte-Carlo p = (1 + g) / (1 + n_surrogates));
    block: surrogates drawn at a time;
    sigmas_px: the smoothing scales (sd of the Gaussian kernel, cells) the variogram is
    fitted with, those up to ``max_sigma_body`` times the body's length used;
    max_lag_body: the variogram is matched at lags up to this fraction of the body's length;
    scale_range: the p-value is the larger of the fitted mixture's and of the same mixture with
    every scale's variance moved to the scale this many times broader (capped at the broadest):
    the broad share is estimated from one small body, and an underestimate makes the null too
    rough, hence anti-conservative (a p-value maximised over a range of the nuisance parameter,
    Berger & Boos 1994, JASA 89:1012); 1: the fitted mixture only;
    max_anisotropy: the smoothing kernels are Gaussians aligned with the body's long axis,
    with sds (along, across) any two scales of ``sigmas_px`` at most this ratio apart, and the
    variogram is matched separately along the axis and across it (lag vectors within 45 deg of
    the axis, and the others): a field whose correlation is longer along the body than across
    it gets surrogates that are too (issue 23: isotropic surrogates called such fields
    across-axis gradients in 13 % of maps); 1: isotropic kernels, one variogram (the null of
    the first issue-23 round);
    min_cells: fewer alive cells than this: no null (p-values are null with a reason).
    """

    n_surrogates: int = 999
    stop_after: int = 10
    block: int = 100
    sigmas_px: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0)
    max_sigma_body: float = 0.8
    max_lag_body: float = 0.5
    scale_range: float = 2.0
    max_anisotropy: float = 4.0
    min_cells: int = 30

    def __post_init__(self):
        from nca.errors import NCAError, require_at_least

        require_at_least(self, ("n_surrogates", "block", "min_cells"), 1, lambda name: f"NullSettings.{name}")
        if self.stop_after < 0:
            raise NCAError(f"NullSettings.stop_after must be >= 0 (0: no early stop), got {self.stop_after}")
        if not self.scale_range >= 1:
            raise NCAError(f"NullSettings.scale_range must be >= 1, got {self.scale_range}")
        if not self.max_anisotropy >= 1:
            raise NCAError(f"NullSettings.max_anisotropy must be >= 1 (1: isotropic), got {self.max_anisotropy}")
        for name in ("max_sigma_body", "max_lag_body"):
            if not getattr(self, name) > 0:
                raise NCAError(f"NullSettings.{name} must be > 0, got {getattr(self, name)}")
        if not self.sigmas_px or min(self.sigmas_px) <= 0:
            raise NCAError(f"NullSettings.sigmas_px must be positive scales, got {self.sigmas_px}")


def _standardise_cols(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0, keepdims=True)
    sd = x.std(0, keepdims=True)
    return x / np.where(sd > 0, sd, 1.0)


def rank_scores(values: np.ndarray) -> np.ndarray:
    """Standardised ranks per column (mean 0, sd 1; ties averaged). [n, k] -> [n, k]: what
    every Spearman statistic here is computed from."""
    return _standardise_cols(_ranks(np.asarray(values, np.float64)))


def normal_scores(values: np.ndarray) -> np.ndarray:
    """Rank-based normal scores per column: Phi^-1((rank - 1/2) / n). [n, k] -> [n, k]. The
    variogram is fitted to these, so a skewed map and its surrogates (Gaussian) are compared
    on the scale the rank statistics see."""
    from scipy.special import ndtri

    return ndtri((rankdata(values, axis=0) - 0.5) / values.shape[0])


def _binned_variogram(lags: dict, cov: np.ndarray) -> np.ndarray:
    """The pair-count-weighted mean of 1 - c(lag) / c(0) in each lag bin -> [n_bins]: the exact
    variogram on a body of a stationary field whose covariance ``cov`` [hp, wp] is given on a
    periodic grid. lags: the body's lag vectors (dy, dx), pair counts and bins
    (``BodyNull._lag_setup``); lags of half the grid or more (they wrap) are left out."""
    hp, wp = cov.shape
    dy, dx = lags["dy"], lags["dx"]
    iy = (dy.astype(int) % hp) * np.ones_like(dx, dtype=int)
    ix = (dx.astype(int) % wp) * np.ones_like(dy, dtype=int)
    ok = lags["sel"] & (np.abs(dy) < hp / 2) & (np.abs(dx) < wp / 2)
    g = 1.0 - cov[iy[ok], ix[ok]] / cov[0, 0]
    return np.bincount(lags["bins"][ok], weights=g * lags["counts"][ok], minlength=lags["n_bins"]) / \
        np.maximum(lags["bin_counts"], 1e-9)


class BodyNull:
    """Surrogate generator and test statistics for one body (alive mask).

    mask: bool [H, W]; centre_uv: [2] image-view centroid; axis_deg: the body's long axis
    (image view; None: from the mask's second moments). Precomputes the rank-standardised
    projections of the cells on the 36 coarse directions of a half circle (the association
    at theta + 180 is minus that at theta), on the long axis and its perpendicular, and their
    distance from the centre; the pair counts of every lag vector on the mask; the Fourier
    grid the surrogates are drawn on. Surrogate noise is drawn once per block and shared by
    the body's maps (each map filters it with its own fitted transfer function).
    """

    def __init__(self, mask: np.ndarray, centre_uv: np.ndarray, settings: NullSettings = NullSettings(),
                 seed: int = 0, key: tuple[int, ...] = (), axis_deg: float | None = None):
        self.mask = np.asarray(mask, bool)
        self.settings = settings
        self.seed = int(seed)
        self.key = tuple(int(x) for x in key)  # e.g. (step, replicate): this body's own streams
        rows, cols = np.nonzero(self.mask)
        self.rows, self.cols = rows, cols
        self.n = len(rows)
        self.uv = view_coords(rows, cols)
        self.centre = np.asarray(centre_uv, np.float64)
        if axis_deg is None and self.n >= 2:
            d = self.uv - self.uv.mean(0)
            evals, evecs = np.linalg.eigh(d.T @ d)
            axis_deg = float(np.mod(np.rad2deg(np.arctan2(evecs[1, 1], evecs[0, 1])), 180.0))
        self.axis_deg = float(axis_deg or 0.0)
        self.coarse = np.arange(0.0, 360.0, COARSE_STEP_DEG)
        # only 0-180: the association at theta + 180 is minus that at theta; max |rho| over
        # half the circle = max rho over the whole circle (for the signed direction).
        proj = direction_vector(self.coarse[: len(self.coarse) // 2]) @ self.uv.T  # [36, n]
        self._rank_proj = self._rank_rows(proj)
        self._rank_axes = self._rank_rows(direction_vector([self.axis_deg, self.axis_deg + 90.0]) @ self.uv.T)
        dist = np.round(np.hypot(*(self.uv - self.centre).T), 9)
        self._rank_dist = self._rank_rows(dist[None])[0]
        self.proj_dist = dist
        along = self.uv @ direction_vector(self.axis_deg) if self.n else np.zeros(1)
        self.length = float(along.max() - along.min()) if self.n else 0.0  # the body's length, cells
        self._lags = None
        self._noise: list = []
        self._stream = STREAM_SURROGATES  # the wide twin draws its noise from STREAM_WIDE
        self._wide: BodyNull | None = None

    def _rank_rows(self, proj: np.ndarray) -> np.ndarray:
        """[m, n] positions -> [m, n] rank-standardised rows / sqrt(n), so that a row times
        rank-standardised map columns is Spearman's rho."""
        return _standardise_cols(rankdata(np.round(proj, 9), axis=1).T).T / np.sqrt(max(self.n, 1))

    # ---------------------------------------------------------------- statistics
    def statistics(self, values: np.ndarray) -> np.ndarray:
        """[4, k]: per map (columns of values [n, k]) its best |Spearman| over the 72 coarse
        directions, |radial Spearman|, |Spearman| along the body's long axis and across it
        (``STATISTICS``). The same statistic is used on the map and on every surrogate."""
        r = rank_scores(values) / np.sqrt(values.shape[0])
        rho = self._rank_proj @ r  # [36, k]
        ax = np.abs(self._rank_axes @ r)  # [2, k]
        return np.stack([np.abs(rho).max(0), np.abs(self._rank_dist @ r), ax[0], ax[1]])

    def signed_statistics(self, values: np.ndarray, along_deg: float) -> np.ndarray:
        """[3, k]: per map (columns of values [n, k]) its signed Spearman with the distance
        from the centre (radial: < 0 when the core is high), with the position projected on
        ``along_deg`` (image view; an oriented axis, so the sign says which end is high) and on
        ``along_deg + 90``. Used across models (``analysis.representation.cross_model``), where
        the sign carries the evidence."""
        r = rank_scores(values) / np.sqrt(values.shape[0])
        axes = self._rank_rows(direction_vector([along_deg, along_deg + 90.0]) @ self.uv.T)  # [2, n]
        return np.concatenate([(self._rank_dist @ r)[None], axes @ r])

    def null_weights(self, weights: np.ndarray) -> list[np.ndarray]:
        """The mixtures one map is tested against: its fitted weights [n_kernels + 1] and,
        with ``scale_range`` > 1, the same with every kernel's variance moved to the kernel
        ``scale_range`` times broader (Berger & Boos 1994: the p-value is the larger)."""
        if self.settings.scale_range <= 1:
            return [weights]
        lg = self._lag_setup()
        m = len(lg["sigma_along"])
        shift = np.zeros((m + 1, m + 1))
        shift[lg["broader"], np.arange(m)] = 1.0
        shift[-1, -1] = 1.0
        return [weights, shift @ weights]

    def wide(self) -> BodyNull | None:
        """This body's wide twin: the same body and streams, its kernel bank reaching
        ``scale_range`` x past the cap (scales up to scale_range x max_sigma_body x the
        length, the bank's scales and each of them x scale_range), its surrogate noise from
        its own stream (``STREAM_WIDE``); None with scale_range 1 and for a twin itself.

        Why (issue 23): the broader mixture of ``null_weights`` moves each kernel's variance to
        the kernel scale_range x broader, but at the bank's broadest scale there is none, so
        for a field correlated along the body beyond it the nuisance range is empty at the
        very end that matters: its across-axis association piles up near +-1 and the capped
        mixtures are too narrow (``wide_weights``; the cross-model test uses it)."""
        s = self.settings
        if s.scale_range <= 1 or self._stream == STREAM_WIDE:
            return None
        if self._wide is None:
            sig = tuple(sorted(set(s.sigmas_px) | {s.scale_range * x for x in s.sigmas_px}))
            twin = BodyNull(self.mask, self.centre, replace(s, sigmas_px=sig, max_sigma_body=s.scale_range * s.max_sigma_body),
                            self.seed, self.key, self.axis_deg)
            twin._stream = STREAM_WIDE
            self._wide = twin
        return self._wide

    def wide_weights(self, weights: np.ndarray) -> np.ndarray:
        """The wide mixture of one map: its fitted weights [n_kernels + 1] (``fit``) with every
        kernel's variance moved to the kernel ``scale_range`` x broader in both directions,
        not capped at this bank's broadest scale -> weights of the wide twin's kernels
        [n_wide_kernels + 1] (draw its surrogates with ``wide().surrogates``)."""
        twin = self.wide()
        lg, tw = self._lag_setup(), twin._lag_setup()
        index = {k: i for i, k in enumerate(zip(tw["sigma_along"], tw["sigma_across"]))}
        out = np.zeros(len(tw["sigma_along"]) + 1)
        for w, k in zip(weights[:-1], zip(lg["sigma_along"], lg["sigma_across"])):
            out[tw["broader"][index[k]]] += w  # this bank's kernels are all in the twin's
        out[-1] = weights[-1]
        return out

    def coarse_direction(self, values: np.ndarray) -> np.ndarray:
        """The 5-deg-grid direction of the best Spearman association. [n, k] -> [k] deg."""
        r = _standardise_cols(rankdata(values, axis=0)) / np.sqrt(values.shape[0])
        rho = self._rank_proj @ r
        i = np.abs(rho).argmax(0)
        return np.mod(self.coarse[i] + np.where(rho[i, np.arange(values.shape[1])] < 0, 180.0, 0.0), 360.0)

    # ---------------------------------------------------------------- variogram fit
    def sigmas(self) -> np.ndarray:
        """The smoothing scales used on this body: those up to max_sigma_body x its length
        (at least the smallest two)."""
        s = np.asarray(self.settings.sigmas_px, np.float64)
        keep = s <= max(self.settings.max_sigma_body * self.length, s[min(1, len(s) - 1)])
        return s[keep]

    def _lag_setup(self):
        """Once per body: the lag grid (2H x 2W, so no pair wraps), each lag vector's bin
        (integer distance 1..max_lag, else -1), the pair counts per lag vector, and the
        Fourier grid of the surrogates with each scale's transfer and exact covariance."""
        if self._lags is not None:
            return self._lags
        import scipy.fft

        h, w = self.mask.shape
        shape = (2 * h, 2 * w)
        m = self.mask.astype(np.float64)
        fm = scipy.fft.rfft2(m, s=shape)
        counts = scipy.fft.irfft2(np.conj(fm) * fm, s=shape)  # [2H, 2W]: pairs at each lag vector
        dy = np.fft.fftfreq(shape[0], 1.0 / shape[0])[:, None]
        dx = np.fft.fftfreq(shape[1], 1.0 / shape[1])[None, :]
        dist = np.hypot(dy, dx)
        max_lag = int(np.clip(np.round(self.settings.max_lag_body * self.length), 3, max(3, min(h, w))))
        b = np.rint(dist).astype(int)
        bins = np.where((b >= 1) & (b <= max_lag) & (counts > 0.5), b - 1, -1)
        th = np.deg2rad(self.axis_deg)
        aniso = self.settings.max_anisotropy > 1
        if aniso:  # lag vectors more than 45 deg off the long axis: the across-axis variogram
            cos_axis = np.abs(dx * np.cos(th) - dy * np.sin(th)) / np.maximum(dist, 1e-12)  # image view (dx, -dy)
            bins = np.where((bins >= 0) & (cos_axis < np.cos(np.pi / 4) - 1e-12), bins + max_lag, bins)
        n_bins = max_lag * (2 if aniso else 1)
        sel = bins >= 0
        bin_counts = np.bincount(bins[sel], weights=counts[sel], minlength=n_bins)
        # the surrogate grid: the body's box plus 2 x the largest scale on each side, so the
        # periodic wrap-around correlates cells by at most exp(-4) (Gaussian covariance sd
        # sqrt(2) sigma at distance 4 sigma)
        sig = self.sigmas()
        # the kernels: (sd along the axis, sd across it), isotropic ones first
        ia, ic = np.meshgrid(np.arange(len(sig)), np.arange(len(sig)), indexing="ij")
        ratio = np.maximum(sig[ia], sig[ic]) / np.minimum(sig[ia], sig[ic])
        keep = (ia == ic) if not aniso else (ratio <= self.settings.max_anisotropy * (1 + 1e-9))
        order = np.lexsort(((ia != ic)[keep], ))  # isotropic first, stable
        ia, ic = ia[keep][order], ic[keep][order]
        sa, sc = sig[ia], sig[ic]
        pad = int(np.ceil(2 * sig.max()))
        r0, c0 = self.rows.min(), self.cols.min()
        hp = scipy.fft.next_fast_len(int(self.rows.max() - r0 + 1) + 2 * pad, real=True)
        wp = scipy.fft.next_fast_len(int(self.cols.max() - c0 + 1) + 2 * pad, real=True)
        fy = np.fft.fftfreq(hp)[:, None]
        fx = np.fft.rfftfreq(wp)[None, :]
        fa = fx * np.cos(th) - fy * np.sin(th)  # frequency along the axis (image view (u, v) = (col, -row))
        fc = fx * np.sin(th) + fy * np.cos(th)
        t2 = np.exp(-4 * np.pi ** 2 * ((sa[:, None, None] * fa) ** 2 + (sc[:, None, None] * fc) ** 2))  # [m, hp, wp/2+1]
        cov = scipy.fft.irfft2(t2, s=(hp, wp))  # [m, hp, wp]: each scale's covariance (unit noise)
        var = cov[:, 0, 0].copy()
        lags = {"dy": dy, "dx": dx, "counts": counts, "bins": bins, "sel": sel, "bin_counts": bin_counts,
                "n_bins": n_bins}
        ref = np.zeros((len(sa) + 1, n_bins))
        for i in range(len(sa)):  # each scale's exact variogram on this body
            ref[i] = _binned_variogram(lags, cov[i])
        ref[-1] = 1.0  # white noise: 1 at every nonzero lag
        # Berger & Boos: each kernel's variance moved to the kernel scale_range times broader
        # in both directions (capped at the broadest scale)
        bi = np.minimum(np.searchsorted(sig, self.settings.scale_range * sig - 1e-9), len(sig) - 1)
        index = {(a, c): i for i, (a, c) in enumerate(zip(ia, ic))}

        def kernel(a, c):  # the kernel (a, c), its smaller sd raised until the ratio is allowed
            while (a, c) not in index:
                a, c = (a + 1, c) if a < c else (a, c + 1)
            return index[(a, c)]

        broader = np.array([kernel(bi[a], bi[c]) for a, c in zip(ia, ic)], int)
        self._lags = {**lags, "shape": shape, "fm": fm, "max_lag": max_lag, "ref": ref, "t2": t2, "var": var,
                      "grid": (hp, wp), "cells": (self.rows - r0 + pad, self.cols - c0 + pad), "sigmas": sig,
                      "sigma_along": sa, "sigma_across": sc, "broader": broader}
        return self._lags

    def exact_variogram(self, cov: np.ndarray) -> np.ndarray:
        """The exact variogram, in this body's lag bins, of a stationary field with covariance
        ``cov`` [hp, wp] (lag (dy, dx) at [dy mod hp, dx mod wp], a periodic grid): what each
        smoothing kernel's reference is (``_lag_setup()["ref"]``) -> [n_bins]."""
        return _binned_variogram(self._lag_setup(), np.asarray(cov, np.float64))

    def variogram(self, values: np.ndarray) -> np.ndarray:
        """Empirical semivariogram of maps [n, k] (standardised over the body) at integer lags
        1..max_lag, over every pair of body cells (FFT) -> [k, n_bins]: max_lag bins, or (with
        max_anisotropy > 1) max_lag along the axis then max_lag across it."""
        import scipy.fft

        lg = self._lag_setup()
        z = _standardise_cols(np.asarray(values, np.float64))
        grid = np.zeros((z.shape[1],) + self.mask.shape)
        grid[:, self.rows, self.cols] = z.T
        fz = scipy.fft.rfft2(grid, s=lg["shape"])
        fz2 = scipy.fft.rfft2(grid * grid, s=lg["shape"])
        fm = lg["fm"]
        # sum over pairs (x, x + lag) of (z(x) - z(x + lag))^2, both cells alive
        s = scipy.fft.irfft2(np.conj(fz2) * fm + np.conj(fm) * fz2 - 2 * np.conj(fz) * fz, s=lg["shape"])
        bins, sel = lg["bins"], lg["sel"]
        out = np.stack([np.bincount(bins[sel], weights=si[sel], minlength=lg["n_bins"]) for si in s])
        return 0.5 * out / np.maximum(lg["bin_counts"], 1e-9)

    def fit(self, values: np.ndarray) -> np.ndarray:
        """Per map the variance of each smoothing kernel (``_lag_setup()["sigma_along"]``,
        ``["sigma_across"]``) and of the white nugget whose summed variograms best match the
        map's (non-negative least squares over the lags and directions).
        values: [n, k] -> [n_kernels + 1, k] (last row: white)."""
        from scipy.optimize import nnls

        g = self.variogram(normal_scores(values))  # [k, L]
        ref = self._lag_setup()["ref"]  # [m + 1, L]
        return np.stack([nnls(ref.T, gi)[0] for gi in g], 1)

    # ---------------------------------------------------------------- surrogates
    def rng(self, stream: int, *extra: int) -> np.random.Generator:
        """This body's generator of one named stream: SeedSequence(seed, spawn_key=(stream, *key, *extra))."""
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(stream, *self.key, *extra)))

    def _noise_block(self, b: int) -> np.ndarray:
        """Block b of the body's surrogate noise, in the Fourier domain [block, hp, wp/2+1]
        (drawn once, from stream (STREAM_SURROGATES, *key, b), a wide twin's from STREAM_WIDE;
        shared by the body's maps)."""
        import scipy.fft

        while len(self._noise) <= b:
            hp, wp = self._lag_setup()["grid"]
            rng = self.rng(self._stream, len(self._noise))
            self._noise.append(scipy.fft.rfft2(rng.standard_normal((self.settings.block, hp, wp), dtype=np.float32)))
        return self._noise[b]

    def transfer(self, weights: np.ndarray) -> np.ndarray:
        """The mixture's transfer function |T| = sqrt(sum_i a_i |T_i|^2 / var_i + white):
        weights [n_kernels + 1] from ``fit`` -> [hp, wp/2+1]."""
        lg = self._lag_setup()
        smooth = np.tensordot(weights[:-1] / lg["var"], lg["t2"], 1)
        return np.sqrt(smooth + weights[-1]).astype(np.float32)

    def surrogate_block(self, transfer: np.ndarray, b: int) -> np.ndarray:
        """Block b of the surrogates of one map at the alive cells: [n, block]."""
        import scipy.fft

        lg = self._lag_setup()
        f = scipy.fft.irfft2(self._noise_block(b) * transfer, s=lg["grid"])
        r, c = lg["cells"]
        return f[:, r, c].T.astype(np.float64)

    def surrogates(self, weights: np.ndarray, count: int) -> np.ndarray:
        """The first ``count`` surrogates of a map with fitted weights -> [n, count]."""
        t = self.transfer(weights)
        nb = -(-count // self.settings.block)
        return np.concatenate([self.surrogate_block(t, b) for b in range(nb)], 1)[:, :count]

    # ---------------------------------------------------------------- test
    def _sequential_p(self, transfer: np.ndarray, obs: np.ndarray) -> tuple[np.ndarray, int]:
        """Besag & Clifford's sequential p-values of one map's 4 statistics obs [4] against
        surrogates filtered by ``transfer`` -> (p [4], surrogates drawn)."""
        s = self.settings
        n_max, h = s.n_surrogates, s.stop_after
        exceed = np.zeros(len(STATISTICS), int)  # surrogates >= observed so far
        stop_at = np.zeros(len(STATISTICS), int)  # l: draws when the h-th came (0: not yet)
        n = b = 0
        while n < n_max and not (h > 0 and (stop_at > 0).all()):
            take = min(s.block, n_max - n)
            st = self.statistics(self.surrogate_block(transfer, b)[:, :take])  # [4, take]
            cum = exceed[:, None] + np.cumsum(st >= obs[:, None] - 1e-12, 1)
            for i in range(len(STATISTICS)):
                if h > 0 and stop_at[i] == 0 and cum[i, -1] >= h:
                    stop_at[i] = n + 1 + int(np.argmax(cum[i] >= h))
            exceed = cum[:, -1]
            n += take
            b += 1
        return np.where(stop_at > 0, h / np.maximum(stop_at, 1), (1 + exceed) / (1 + n_max)), n

    def test(self, values: np.ndarray, weights: np.ndarray | None = None) -> dict:
        from threadpoolctl import threadpool_limits

        # Many small matrix products: OpenBLAS's threads cost far more than they save here
        # (measured: 14 ms -> 0.2 ms CPU for one [36, 700] x [700, 199] product on 2 cores).
        with threadpool_limits(1, "blas"):
            return self._test(values, weights)

    def _test(self, values: np.ndarray, weights: np.ndarray | None = None) -> dict:
        """Spatial-null p-values of k maps on this body.

        values: [n, k]; weights: their fitted mixtures (``fit(values)``, [n_kernels + 1, k])
        when the caller has them already (the combined test across models). Returns {"association_stat", "radial_stat", "along_stat",
        "across_stat" [k]; "p_value" (any direction), "radial_p_value", "along_p_value",
        "across_p_value" [k] (Besag-Clifford sequential p-values, module doc); "n_drawn" [k]
        (surrogates drawn for the map); "sigma_px" [k] (variance-weighted mean of the fitted
        kernels' geometric-mean scales), "anisotropy" [k] (variance-weighted geometric mean of
        the kernels' along / across ratio: > 1, correlated longer along the body),
        "smooth_weight" [k] (share of the fitted variance that is not white);
        "axis_deg", "n_surrogates", "min_p" (1 / (n_surrogates + 1))}.
        """
        values = np.asarray(values, np.float64)
        k = values.shape[1]
        s = self.settings
        obs = self.statistics(values)  # [4, k]
        weights = self.fit(values) if weights is None else np.asarray(weights, np.float64)  # [m + 1, k]
        lg = self._lag_setup()
        sig = np.sqrt(lg["sigma_along"] * lg["sigma_across"])  # each kernel's geometric-mean scale
        n_max = s.n_surrogates
        p = np.zeros((len(STATISTICS), k))
        drawn = np.zeros(k, int)
        for j in range(k):
            for wts in self.null_weights(weights[:, j]):
                pj, nj = self._sequential_p(self.transfer(wts), obs[:, j])
                p[:, j] = np.maximum(p[:, j], pj)
                drawn[j] += nj
        smooth = weights[:-1]
        tot = weights.sum(0)
        return {"association_stat": obs[0], "radial_stat": obs[1], "along_stat": obs[2], "across_stat": obs[3],
                "p_value": p[0], "radial_p_value": p[1], "along_p_value": p[2], "across_p_value": p[3],
                "n_drawn": drawn,
                "sigma_px": np.where(smooth.sum(0) > 0, (sig[:, None] * smooth).sum(0) / np.maximum(smooth.sum(0), 1e-300), 0.0),
                "anisotropy": np.where(smooth.sum(0) > 0, np.exp((np.log(lg["sigma_along"] / lg["sigma_across"])[:, None]
                                                                  * smooth).sum(0) / np.maximum(smooth.sum(0), 1e-300)), 1.0),
                "smooth_weight": np.where(tot > 0, smooth.sum(0) / np.where(tot > 0, tot, 1.0), 0.0),
                "axis_deg": self.axis_deg, "n_surrogates": n_max, "min_p": 1.0 / (1 + n_max)}


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
    finds the direction as ``analysis.representation.axes.best_direction`` does (coarse Spearman start on
    that seed's map, then ``refine_direction(fast=True)`` with the bootstrap weights). Returns [lo, hi]
    in degrees: the central ``level`` interval of the draws' signed offsets from point_deg,
    added to point_deg; the interval runs counter-clockwise from lo to hi (hi may exceed 360
    or lo fall below 0 so that lo <= point <= hi is visible).
    Cells are not independent in a smooth map, so this interval covers the sampling of cells
    and of fire masks, not the spatial autocorrelation (the p-value covers that).
    """
    from threadpoolctl import threadpool_limits

    from analysis.representation.axes import best_direction, refine_direction, wrap180

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
    along_max_deg, min_elongation: as in ``analysis.representation.axes.AxisThresholds``.
    """

    alpha: float = 0.05
    min_agreement: float = 0.8
    along_max_deg: float = 45.0
    min_elongation: float = 1.15


def body_kinds(p_axial: np.ndarray, p_radial: np.ndarray, assoc_stat: np.ndarray, radial_stat: np.ndarray,
               angle_to_axis: np.ndarray, elongation: float, rule: KindRule = KindRule()) -> tuple[list[str], list]:
    """Kinds of the k components of one body from their null p-values. All arrays [k].

    A component is axial when its axial p, Holm-adjusted over the k components, is < alpha,
    radial when its radial one is; when both, the larger statistic wins (as ``analysis.representation.axes.classify``). An axial
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
