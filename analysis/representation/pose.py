"""Pose of a grown body: the rotation (and reflection) that best maps a target onto it.

For a rotation-invariant rule (the isotropic NCA) the body can grow in any direction, so
"where the head goes" is a measured angle: the rotation of the target image that best
overlaps the grown body's mask (intersection over union of the alpha > threshold masks,
both centred on their alpha centroids), searched over ``angles`` and both reflections.
``rayleigh`` tests a set of angles for a preferred direction; ``axis_agreement`` asks whether
several models grown with the same fire masks choose the same body axis. Pure NumPy/SciPy;
docs/importing.md reports what they found for the isotropic lizards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from analysis.representation.axes import axis_angle_between


@dataclass(frozen=True)
class Pose:
    """angle_deg: counter-clockwise rotation of the target (as viewed) that best matches the
    body; mirrored: whether the target was reflected (left-right) first; iou: the overlap
    at that pose; iou_by_angle: [2, n_angles] (unmirrored, mirrored)."""

    angle_deg: float
    mirrored: bool
    iou: float
    iou_by_angle: np.ndarray


def _centred(mask: np.ndarray) -> np.ndarray:
    """mask: [H, W] float; shifted so its centroid is at the image centre."""
    cy, cx = ndimage.center_of_mass(mask)
    h, w = mask.shape
    return ndimage.shift(mask, ((h - 1) / 2 - cy, (w - 1) / 2 - cx), order=1)


def match_pose(body_alpha: np.ndarray, target_alpha: np.ndarray, angles=np.arange(0, 360, 5),
               threshold: float = 0.1) -> Pose:
    """body_alpha, target_alpha: [H, W] (same shape). Returns the best ``Pose``."""
    body = _centred((np.asarray(body_alpha) > threshold).astype(np.float64)) > 0.5
    tgt = _centred((np.asarray(target_alpha) > threshold).astype(np.float64))
    ious = np.zeros((2, len(angles)))
    for m, t in enumerate((tgt, tgt[:, ::-1])):
        for k, a in enumerate(angles):
            r = ndimage.rotate(t, float(a), reshape=False, order=1) > 0.5  # CCW as viewed (rows down)
            ious[m, k] = (r & body).sum() / max((r | body).sum(), 1)
    m, k = np.unravel_index(np.argmax(ious), ious.shape)
    return Pose(float(angles[k]), bool(m), float(ious[m, k]), ious)


def rayleigh(theta_deg) -> tuple[float, float]:
    """Mean resultant length R and the Rayleigh test's p-value of angles [n] in degrees, for
    a preferred direction against uniform (Zar 1999, eq. 27.4). A preferred axis (angles mod
    180) is a preferred direction of the doubled angles; a preference for a lattice's k
    directions, one of k x the angles."""
    t = np.deg2rad(np.asarray(theta_deg, np.float64))
    n = len(t)
    r = float(np.hypot(np.cos(t).sum(), np.sin(t).sum()))
    p = float(np.exp(np.sqrt(1 + 4 * n + 4 * (n * n - r * r)) - (1 + 2 * n)))
    return r / n, min(p, 1.0)


def axis_agreement(axes_deg, rng: np.random.Generator, draws: int = 9999) -> dict:
    """Do models grown with the same fire masks choose the same axis? axes_deg: [models, n]
    (replicate i of every model drew the same masks). Statistic: the mean over model pairs and
    replicates of the axis difference (mod 180, in [0, 90]; 45 for independent uniform axes).
    Null: each model's replicates permuted independently, which keeps every model's own axis
    distribution (a lattice preference included); p = (1 + #{null <= observed}) / (1 + draws)."""
    axes = np.asarray(axes_deg, np.float64)
    if axes.ndim != 2 or axes.shape[0] < 2:
        raise ValueError(f"axes_deg must be [models >= 2, n], got shape {axes.shape}")
    i, j = np.triu_indices(axes.shape[0], 1)

    def mean_diff(a):
        return float(axis_angle_between(a[i], a[j]).mean())

    observed = mean_diff(axes)
    null = np.array([mean_diff(rng.permuted(axes, axis=1)) for _ in range(draws)])
    return {"mean_axis_difference_deg": observed, "null_median_deg": float(np.median(null)),
            "p": float((1 + (null <= observed).sum()) / (1 + draws)), "draws": draws}
