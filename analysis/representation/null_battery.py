"""Field families the spatial null was NOT built from, to calibrate it (issue 23, item 3).

Pure NumPy. Every family is a stationary Gaussian random field with no axis, drawn by
spectral synthesis (white noise filtered in the Fourier domain on a periodic grid at least
four correlation lengths wider than the body, so no wrap-around reaches it) and restricted
to the body's cells; and ``planted_ramp`` adds a gradient of known direction and size to
one of them (the positive control).

Families (``FAMILIES``; a family is ``(kind, params)``):

* ``matern``: the Matérn covariance (Stein 1999, *Interpolation of Spatial Data*, eq. 2.7;
  Rasmussen & Williams 2006, eq. 4.14), smoothness nu in {0.5 (exponential), 1.5, 2.5},
  length ell: C(h) = 2^(1-nu)/Gamma(nu) (sqrt(2 nu) h/ell)^nu K_nu(sqrt(2 nu) h/ell). Its
  2-D spectral density is proportional to (2 nu / ell^2 + 4 pi^2 |f|^2)^-(nu + 1).
* ``two_scale``: a fine texture (Matérn 1.5, ell_fine) plus a broad component (Matérn 2.5,
  ell_broad) with a share ``broad`` of the variance: the audit's anti-conservative case.
* ``anisotropic``: Matérn 1.5 with length ell along a random orientation and ell x ratio
  across it (the spectral density's cut-off is ratio times lower across); with ``psi_deg``
  (image view, degrees), or ``aligned`` "along" / "across" (the body's long axis
  ``axis_deg``, or its perpendicular), every field's long length (ell x ratio) lies along that
  orientation instead (``psi_deg`` = the body's long axis: a field with no gradient whose
  correlation is aligned with the body, the case an isotropic null mistakes for an
  across-axis gradient).

Shapes: mask bool [H, W]; fields at the alive cells [n, count] (row-major order of
``np.nonzero(mask)``), each standardised over the body.
"""

from __future__ import annotations

import numpy as np

from nca.errors import NCAError

# name -> (kind, params): the bench's battery. Lengths are in cells; the lizard's body is
# about 40 cells long, so ell runs up to the body's size.
FAMILIES: dict[str, tuple[str, dict]] = {
    **{f"matern{nu}_l{ell}": ("matern", {"nu": nu, "ell": ell})
       for nu in (0.5, 1.5, 2.5) for ell in (3, 10, 20, 40)},
    **{f"two_scale_f{f}_b{b}_w{w}": ("two_scale", {"ell_fine": f, "ell_broad": b, "broad": w})
       for f, b, w in ((2, 15, 0.3), (2, 15, 0.6), (2, 30, 0.5), (4, 40, 0.5))},
    **{f"aniso_l{ell}_r{r}": ("anisotropic", {"ell": ell, "ratio": r}) for ell, r in ((10, 3), (20, 4), (40, 4))},
    # aligned with the body (issue 23, round 3): the long length along the body's long axis
    # (the field varies across it) or across it (the field varies along it)
    **{f"aniso_{a}_l{ell}_r{r}": ("anisotropic", {"ell": ell, "ratio": r, "aligned": a})
       for a, ell, r in (("along", 10, 4), ("along", 20, 4), ("across", 10, 4), ("across", 20, 4))},
}


def _grid(mask: np.ndarray, reach: float) -> tuple[int, int, np.ndarray, np.ndarray]:
    """A periodic grid holding the body's bounding box plus ``reach`` cells on each side ->
    (hp, wp, rows, cols) with the body's cells' positions on that grid."""
    import scipy.fft

    rows, cols = np.nonzero(mask)
    pad = int(np.ceil(reach))
    bh, bw = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    hp = scipy.fft.next_fast_len(int(bh) + 2 * pad, real=True)
    wp = scipy.fft.next_fast_len(int(bw) + 2 * pad, real=True)
    return hp, wp, rows - rows.min() + pad, cols - cols.min() + pad


def _matern_psd(fy: np.ndarray, fx: np.ndarray, nu: float, ell: float) -> np.ndarray:
    return (2 * nu / ell ** 2 + 4 * np.pi ** 2 * (fx ** 2 + fy ** 2)) ** (-(nu + 1))


def _synth(mask: np.ndarray, psds, reach: float, count: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of independent fields, one per (psd_fn(fy, fx), variance) in ``psds``, at the
    body's cells, standardised over them -> [n, count]."""
    hp, wp, r, c = _grid(mask, reach)
    fy = np.fft.fftfreq(hp)[:, None]
    fx = np.fft.rfftfreq(wp)[None, :]
    total = 0.0
    for psd_fn, var in psds:
        amp = np.sqrt(psd_fn(fy, fx))
        noise = rng.standard_normal((count, hp, wp))
        f = np.fft.irfft2(np.fft.rfft2(noise) * amp, s=(hp, wp))[:, r, c].T  # [n, count]
        f = f / np.sqrt(np.mean(amp ** 2))  # unit variance on the whole grid, before mixing
        total = total + np.sqrt(var) * f
    total = total - total.mean(0, keepdims=True)
    return total / total.std(0, keepdims=True)


def draw_family(mask: np.ndarray, kind: str, params: dict, count: int, rng: np.random.Generator,
                axis_deg: float | None = None) -> np.ndarray:
    """``count`` fields of one family at the body's cells -> [n, count] (standardised).
    axis_deg: the body's long axis (image view), needed by the ``aligned`` families."""
    if kind == "matern":
        nu, ell = params["nu"], params["ell"]
        return _synth(mask, [(lambda fy, fx: _matern_psd(fy, fx, nu, ell), 1.0)], 4 * ell, count, rng)
    if kind == "two_scale":
        f, b, w = params["ell_fine"], params["ell_broad"], params["broad"]
        return _synth(mask, [(lambda fy, fx: _matern_psd(fy, fx, 1.5, f), 1 - w),
                             (lambda fy, fx: _matern_psd(fy, fx, 2.5, b), w)], 4 * b, count, rng)
    if kind == "anisotropic":
        ell, ratio = params["ell"], params["ratio"]
        out = []
        fixed = params.get("psi_deg")
        if "aligned" in params:
            if axis_deg is None:
                raise ValueError("an aligned anisotropic family needs the body's axis_deg")
            fixed = axis_deg + (0.0 if params["aligned"] == "along" else 90.0)
        # psi: the short length's orientation in (col, row) array terms; image view (u, v) =
        # (col, -row), so a long length at image-view psi_deg is a short one at -psi_deg - 90
        psis = rng.uniform(0, np.pi, count) if fixed is None else np.full(count, -np.deg2rad(fixed + 90.0))
        for psi in psis:  # each field its own orientation, or the fixed one
            def psd(fy, fx, psi=psi):
                a = fx * np.cos(psi) + fy * np.sin(psi)  # frequency along the long length
                b = -fx * np.sin(psi) + fy * np.cos(psi)
                return (3 / ell ** 2 + 4 * np.pi ** 2 * (a ** 2 + (b * ratio) ** 2)) ** -2.5
            out.append(_synth(mask, [(psd, 1.0)], 4 * ell, 1, rng))
        return np.concatenate(out, 1)
    raise NCAError(f"unknown field family {kind!r}")


def planted_ramp(uv: np.ndarray, theta_deg: float, texture: np.ndarray, signal_to_texture: float) -> np.ndarray:
    """A linear gradient along ``theta_deg`` (image view) plus a texture: the positive control.

    uv: [n, 2] the cells' image-view positions; texture: [n] (standardised);
    signal_to_texture: the ramp's sd over the body divided by the texture's sd -> [n]."""
    from analysis.representation.axes import direction_vector

    p = uv @ direction_vector(theta_deg)
    p = (p - p.mean()) / p.std()
    return signal_to_texture * p + texture


def planted_radial(uv: np.ndarray, centre: np.ndarray, texture: np.ndarray, signal: float) -> np.ndarray:
    """A core-periphery map (linear in the distance from ``centre``) plus a texture: the radial
    positive control, and the confound of the axis tests (no gradient along any direction).

    uv: [n, 2] image-view positions; centre: [2]; texture: [n] (standardised); signal: the
    pattern's sd over the body / the texture's, < 0 when the core is high -> [n]."""
    d = np.hypot(*(uv - centre).T)
    return signal * (d - d.mean()) / d.std() + texture
