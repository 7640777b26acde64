"""Pose of a grown body: the rotation (and reflection) that best maps a target onto it.

For a rotation-invariant rule (the isotropic NCA) the body can grow in any direction, so
"where the head goes" is a measured angle: the rotation of the target image that best
overlaps the grown body's mask (intersection over union of the alpha > threshold masks,
both centred on their alpha centroids), searched over ``angles`` and both reflections.
Pure NumPy/SciPy; docs/importing.md reports what it found for the isotropic lizard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


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
