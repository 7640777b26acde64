"""The isotropic NCA demo model (nca/assets/isonca, google-research/self-organising-systems,
Apache-2.0): our step against a NumPy transcription of the demo's update as its shader states
it, the growth its authors show (a lizard, in any direction), and the pose measure's controls."""

import jax
import numpy as np
import pytest
from scipy import ndimage

import nca
from analysis.representation.pose import match_pose
from nca.formats.isonca import ASSET, body_center, hex_to_square, read_isonca
from nca.model import step

# the demo's neib(x, y) calls: column offset x, row offset y
HEX = ((-1, -1), (0, -1), (-1, 0), (1, 0), (0, 1), (1, 1))


def demo_step(w1, b1, w2, x, fired):
    """One step as the demo's fragment shader computes it, cell by cell's rules vectorised:
    w1 [hidden, 2C] as stored, b1 [hidden], w2 [hidden, C]; x [H, W, C] on a torus;
    fired: bool [H, W] (the cells whose hash was <= 0.5)."""
    x = np.asarray(x, np.float64)
    lap = -12.0 * x
    max_alpha = x[..., 3].copy()
    for dx, dy in HEX:
        nb = np.roll(x, (-dy, -dx), axis=(0, 1))  # nb[i, j] = x[i + dy, j + dx], wrapped
        lap = lap + 2.0 * nb
        max_alpha = np.maximum(max_alpha, nb[..., 3])
    sp = np.concatenate([x, lap], -1)
    y = sp @ w1.T.astype(np.float64) + b1
    upd = np.maximum(y, 0) @ w2
    new = np.clip(x + upd, -2.0, 2.0)
    new = np.where((max_alpha < 0.1)[..., None], 0.0, new)
    return np.where(fired[..., None], new, x)


@pytest.fixture(scope="module")
def model():
    return nca.load_model("isonca:lizard")


def test_step_equals_the_demo_shader_semantics(model):
    import base64
    import json

    raw = json.loads(ASSET.read_text())
    w1, b1, w2 = (np.frombuffer(base64.b64decode(raw[k]["data64"]), "<f4").reshape(raw[k]["shape"])
                  for k in ("w1", "b1", "w2"))
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.4, (24, 20, 16)).astype(np.float32)
    x[..., 3] = np.where(rng.random((24, 20)) < 0.15, rng.random((24, 20)), 0.0)
    x[0, :, 3] = 0.5  # live cells on the edge: the torus wraps them
    fired = rng.random((24, 20)) < 0.5
    ours = np.asarray(step(model.params, x, jax.random.key(0), model.model_config, fire=fired[..., None])[0])
    ref = demo_step(w1, b1, w2, x, fired)
    assert np.max(np.abs(ours - ref)) < 1e-5
    # controls: the square 3x3 neighbourhood, or the article's masking, do not match the demo
    import dataclasses
    for change in ({"topology": "square"}, {"life": "pre-post"}):
        cfg = dataclasses.replace(model.model_config, **change)
        other = np.asarray(step(model.params, x, jax.random.key(0), cfg, fire=fired[..., None])[0])
        assert np.max(np.abs(other - ref)) > 1e-2, change


def test_pose_measure_recovers_a_planted_rotation_and_reflection():
    t = nca.load_target("lizard")[..., 3]
    for angle, mirrored in ((130, False), (35, True), (300, True)):
        body = t[:, ::-1] if mirrored else t
        body = ndimage.rotate(body, angle, reshape=False, order=1)
        p = match_pose(body, t)
        assert p.mirrored == mirrored and min(abs(p.angle_deg - angle), 360 - abs(p.angle_deg - angle)) <= 5
        assert p.iou > 0.85


def test_grows_the_lizard_its_authors_show_in_some_direction(model):
    """The demo shows a lizard growing from one cell, in a direction chosen by the fire
    noise alone. Measured (key 0, 96 x 96): IoU 0.82 with the Noto lizard at the best pose
    after 800 steps, against at most 0.64 for the 11 other bundled targets (eye); 0.81 against
    at most 0.62 of the 5 tested here after 600 steps (2026-12-07), which the test grows."""
    x, _ = nca.grow(model, 600, jax.random.key(0), size=96)
    x = np.asarray(x)
    img = hex_to_square(x, 72, center=body_center(x))
    score = {name: match_pose(img[..., 3], nca.load_target(name)[..., 3]).iou
             for name in ("lizard", "butterfly", "lady_beetle", "tropical_fish", "eye", "christmas_tree")}
    assert score["lizard"] > 0.75
    assert score["lizard"] > max(v for k, v in score.items() if k != "lizard") + 0.1, score
