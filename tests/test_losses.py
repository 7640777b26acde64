"""Training losses: the isotropic NCA's invariant loss finds every pose of the target, and
nothing that is not the target (planted poses, shapes and an empty grid)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from nca.config import Config, preset
from nca.errors import NCAError
from nca.losses import l2_losses, per_sample_losses, polar_grid, rotation_losses, sharpen, to_polar
from nca.targets import load_target
from nca.train import compiled_train_step, init_train_state

LIZARD = np.asarray(load_target("lizard", 24, 8, "none"))  # [40, 40, 4]
G = LIZARD.shape[0]


def state(*rgba):
    """RGBA images [H, W, 4] -> a batch of states [B, H, W, 16] (hidden channels 0)."""
    x = np.stack(rgba)
    return jnp.asarray(np.concatenate([x, np.zeros(x.shape[:3] + (12,), np.float32)], -1))


def turned(img, degrees):
    """img rotated about the grid's centre, bilinear (scipy: an implementation not ours)."""
    return ndimage.rotate(img, degrees, axes=(1, 0), reshape=False, order=1).astype(np.float32)


def test_every_pose_of_the_target_scores_near_zero_and_other_shapes_do_not():
    butterfly = np.asarray(load_target("butterfly", 24, 8, "none"))
    poses = [LIZARD, np.rot90(LIZARD, 1), np.rot90(LIZARD, 2), turned(LIZARD, 37), turned(LIZARD, 123)]
    mirrored = [LIZARD[:, ::-1], LIZARD[::-1], turned(LIZARD[:, ::-1], 71)]
    others = [butterfly, turned(butterfly, 50), np.zeros_like(LIZARD)]
    x = state(*poses, *mirrored, *others)
    t = jnp.asarray(LIZARD)
    l2 = np.asarray(l2_losses(x, t))
    rot = np.asarray(per_sample_losses("rotation", x, t))
    both = np.asarray(per_sample_losses("rotation-reflection", x, t))
    n, m = len(poses), len(mirrored)
    floor = rot[n + m:].min()  # the closest thing that is not the lizard
    assert rot[0] < 1e-6 and l2[0] == 0
    # Turned lizards: far in L2 (the control: a fixed-pose loss sees them as wrong), near zero
    # invariantly (interpolation only).
    assert (l2[1:n] > 0.02).all(), l2
    assert (rot[:n] < 0.06 * floor).all(), (rot, floor)
    # Mirrored lizards: only the reflection-invariant loss accepts them.
    assert (rot[n:n + m] > 0.4 * floor).all(), (rot, floor)
    assert (both[n:n + m] < 0.06 * floor).all(), (both, floor)
    # Not the lizard in any pose: both invariant losses stay far from zero.
    assert (both[n + m:] > 0.5 * floor).all() and floor > 0.1, (both, floor)


@pytest.mark.parametrize("degrees", [17, 90, 200, 301])
def test_the_best_rotation_is_the_planted_one(degrees):
    losses = np.asarray(rotation_losses(state(turned(LIZARD, degrees)), jnp.asarray(LIZARD), False))[0]
    step = 2 / G  # radians between polar angles
    found = math.degrees((-np.argmin(losses) * step) % (2 * math.pi))
    err = (found - degrees + 180) % 360 - 180
    assert abs(err) <= 2 * math.degrees(step), (found, degrees)


def test_polar_samples_of_a_linear_ramp_are_the_ramp_at_their_coordinates():
    # Bilinear interpolation is exact on a linear function, so a ramp checks the coordinates.
    rows, cols = polar_grid(G, G)
    assert rows.shape == (G // 2, math.floor(G * math.pi) + 1)
    r, c = np.mgrid[0:G, 0:G].astype(np.float32)
    img = np.stack([0.5 * r + 0.25 * c, r, c, np.ones_like(r)], -1)[None]
    p = np.asarray(to_polar(jnp.asarray(img)))[0]  # [4, R, A]
    inside = (rows >= 0) & (rows <= G - 1) & (cols >= 0) & (cols <= G - 1)
    assert inside.mean() > 0.9
    np.testing.assert_allclose(p[0][inside], (0.5 * rows + 0.25 * cols)[inside], atol=1e-4)
    np.testing.assert_allclose(p[1][inside], rows[inside], atol=1e-4)
    # The rings are centred on the grid's centre, (G - 1) / 2 in pixels.
    np.testing.assert_allclose(rows.mean(axis=1), (G - 1) / 2, atol=0.2)


def test_sharpen_equals_scipy_unsharp_masking():
    img = np.random.default_rng(0).random((1, 12, 9, 4)).astype(np.float32)
    blur = ndimage.gaussian_filter(img, sigma=(0, 1, 1, 0), truncate=2.0, mode="mirror")
    np.testing.assert_allclose(np.asarray(sharpen(jnp.asarray(img))), img + 2 * (img - blur), atol=1e-5)


def test_training_with_the_invariant_loss_runs_equals_the_reference_step_and_lowers_it():
    cfg = preset("tiny", loss="rotation-reflection", model=dict(hidden=32, perception="laplacian"))
    t = jnp.asarray(np.asarray(load_target(cfg.target, cfg.target_size, cfg.target_padding)))
    fast, ref = init_train_state(cfg), init_train_state(cfg)
    step_fast, step_ref = compiled_train_step(cfg, fast=True), compiled_train_step(cfg, fast=False)
    losses = []
    for _ in range(30):
        fast, loss = step_fast(fast, t)
        losses.append(float(loss))
        if len(losses) <= 3:
            ref, loss_ref = step_ref(ref, t)
            np.testing.assert_allclose(float(loss_ref), losses[-1], rtol=1e-4)
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


def test_an_unknown_loss_is_one_clear_error():
    with pytest.raises(NCAError, match="unknown loss 'rotated'; choose one of l2, rotation, rotation-reflection"):
        Config(loss="rotated")
    with pytest.raises(NCAError, match="unknown loss"):
        Config.from_dict({**Config().to_dict(), "loss": "L1"})
    assert Config.from_dict({k: v for k, v in Config().to_dict().items() if k != "loss"}).loss == "l2"
