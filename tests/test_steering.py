"""Steering and transplants (analysis.causal.steering) on planted states and a do-nothing rule, and
the development report end to end on a small published-model run."""

import json
import runpy
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from analysis.development import positional as P
from analysis.causal import steering as S
from analysis.representation.axes import body_frame
from nca.errors import NCAError
from nca.model import ModelConfig, init_params

ROOT = Path(__file__).resolve().parents[1]
CFG = ModelConfig()


def _body_state(shift_col=0):
    x = np.zeros((24, 24, 16), np.float32)
    x[10:14, 4 + shift_col:18 + shift_col, 3] = 1.0  # a horizontal bar
    x[10:14, 4 + shift_col:18 + shift_col, 4:] = 0.5
    return x


def test_steering_adds_the_dose_to_alive_cells_inside_the_window_only():
    params = init_params(jax.random.key(0), CFG)  # zero-initialised output layer: the rule does nothing
    x0 = jnp.asarray(_body_state())[None]
    d = np.zeros((1, 16), np.float32)
    d[0, 6] = 1.0
    alphas = jnp.asarray([[0.0, 0.1, -0.2]])
    fin = np.asarray(S.steered_finals(params, x0, jax.random.key(1), jnp.asarray(d), alphas, 2, 7,
                                      jnp.ones((24, 24)), 10, CFG))  # [1, 3, 1, H, W, C]
    alive = _body_state()[..., 3] > 0
    for j, a in enumerate([0.0, 0.1, -0.2]):
        got = fin[0, j, 0, ..., 6]
        np.testing.assert_allclose(got[alive], 0.5 + 5 * a, atol=1e-5)  # 5 steps in [2, 7)
        np.testing.assert_allclose(np.delete(fin[0, j, 0], 6, -1), np.delete(fin[0, 0, 0], 6, -1), atol=1e-6)
    far = np.zeros((24, 24), bool)
    far[0, 0] = True
    assert np.all(fin[:, :, 0][..., 0, 0, :] == 0)  # dead cells far from the body stay empty



def test_region_steering_pushes_only_the_chosen_half_of_the_body():
    from analysis.development.positional import reference_frame

    params = init_params(jax.random.key(0), CFG)  # the rule does nothing: only the push acts
    body = _body_state()
    frame = reference_frame(body[None, ..., 3])
    alive = body[..., 3] > 0
    d = np.zeros((1, 16), np.float32)
    d[0, 6] = 1.0
    masks = {r: S.region_mask(body.shape[:2], frame, r) for r in S.REGIONS}
    assert np.all(masks["all"] == 1) and np.all(masks["front"] + masks["back"] <= 1)
    for region in ("front", "back"):
        m = masks[region]
        assert 0 < (m.astype(bool) & alive).sum() < alive.sum()  # a real part of the body, not all of it
        fin = np.asarray(S.steered_finals(params, jnp.asarray(body)[None], jax.random.key(1), jnp.asarray(d),
                                          jnp.asarray([[0.2]]), 0, 5, jnp.asarray(m), 10, CFG))[0, 0, 0, ..., 6]
        inside, outside = alive & (m > 0), alive & (m == 0)
        np.testing.assert_allclose(fin[inside], 0.5 + 5 * 0.2, atol=1e-5)
        np.testing.assert_allclose(fin[outside], 0.5, atol=1e-6)
    with pytest.raises(NCAError, match="unknown steering region"):
        S.SteeringSettings(region="left")

def test_body_measures_find_a_planted_shift_and_length():
    frame = body_frame(_body_state()[..., 3])
    m = S.body_measures(np.stack([_body_state(), _body_state(3)]), np.zeros((24, 24, 4)), frame, 0.1)
    assert m["shift_along"][0] == pytest.approx(0, abs=1e-9)
    assert abs(m["shift_along"][1]) == pytest.approx(3.0)  # the axis is horizontal; its sign is a convention
    assert m["length"][0] == pytest.approx(13.0) and m["area"][1] == 56


def test_graft_copies_the_donor_disc_onto_the_host_disc():
    x = np.zeros((1, 20, 20, 16), np.float32)
    x[0, 5, 5, 7] = 3.0
    g = S.graft(x, (5, 5), (12, 14), 2.0)
    assert g[0, 12, 14, 7] == 3.0 and g[0, 5, 5, 7] == 3.0 and x[0, 12, 14, 7] == 0.0


def test_steering_settings_reject_a_window_outside_the_run_and_no_zero_dose():
    with pytest.raises(NCAError, match="window"):
        S.SteeringSettings(steps=10, t_start=5, t_stop=20)
    with pytest.raises(NCAError, match="include 0"):
        S.SteeringSettings(doses=(1.0, 2.0))


def test_probe_direction_of_a_planted_gradient_steers_the_decoded_position():
    """Adding the along-probe's direction moves the decoded position, a random direction not."""
    rng = np.random.default_rng(0)
    n = 2000
    pos = rng.uniform(-10, 10, n)
    feats = np.stack([pos / 10 + rng.normal(0, 0.05, n)] + [rng.normal(0, 0.1, n) for _ in range(5)], 1)
    d = P.probe_direction(feats, pos)
    pred = P._fit_predict("ridge", feats, np.stack([pos] * 3, 1), feats + 0.5 * d, P.ProbeSettings())[:, 0]
    assert np.mean(pred - pos) > 3
    r = rng.standard_normal(6)
    r /= np.linalg.norm(r)
    r -= (r @ d) * d
    r /= np.linalg.norm(r)
    pred_r = P._fit_predict("ridge", feats, np.stack([pos] * 3, 1), feats + 0.5 * r, P.ProbeSettings())[:, 0]
    assert abs(np.mean(pred_r - pos)) < 0.5


def test_development_report_runs_every_part_on_a_published_model(tmp_path):
    dev = runpy.run_path(str(ROOT / "scripts" / "development_report.py"), run_name="development_report")
    out = tmp_path / "dev"
    argv = ["distill:lizard/regenerating", "--out", str(out), "--steps", "30", "--every", "15", "--replicates", "2",
            "--doses=-2,0,2", "--n-random", "4", "--graft-at", "30", "--after", "15", "--size", "32", "--placements", "3",
            "--placement-replicates", "2", "--quiet"]
    assert dev["main"](argv) == 0
    rep = json.loads((out / "report.json").read_text())
    last = rep["positional"]["per_step"][-1]
    assert last["knn"]["along"]["r2"]["mean"] > 0.5 > last["shuffled_knn"]["along"]["r2"]["mean"]
    st = rep["steering"]
    assert set(st["direction_names"]) >= {"pc1", "probe:along", "random4"} and "random5" not in st["direction_names"]
    assert st["push_norm_per_step"] == pytest.approx([2 / 30, 0, 2 / 30])  # one absolute unit for every direction
    assert len(st["random_band"]["length"]["hi"]) == 3 and st["random_band"]["length"]["n"][0] == 4
    assert st["directions"]["pc1"]["specificity"]["length"]["outside"][1] is None  # dose 0: the reference
    assert "specificity" not in st["directions"]["random1"]
    assert rep["transplant"]["identity_index"][0]["mean"] > 0.8  # right after the graft it reads as the donor
    assert {"probes_r2.png", "steering.png", "transplant.png"} <= set(rep["figures"])
    with pytest.raises(NCAError, match="multiple"):
        dev["main"](["distill:lizard/regenerating", "--out", str(out), "--every", "7", "--after", "20"])


def test_the_development_headline_warns_first_for_a_rotation_invariant_rule():
    from analysis.reports.development import POSE_NOTE, headline

    _, rows = headline({"conventions": {"pose": POSE_NOTE}})
    assert rows[0] == ["(read first)", POSE_NOTE]
    _, rows = headline({"conventions": {}})
    assert rows == []


# ------------------------------------------------------------------ the hex grid (issue 24)

HEX = ModelConfig(perception="laplacian", topology="hex")


def _hex_diagonal_bar(n=12, size=30):
    """A bar of 2 x n cells along the array's diagonal (i = j): on the hex lattice each step is
    one cell spacing at 120 degrees (image view), on the array it would be sqrt(2) at 135."""
    x = np.zeros((size, size, 16), np.float32)
    for k in range(n):
        for w in (0, 1):
            x[8 + k, 8 + k + w, 3] = 1.0
            x[8 + k, 8 + k + w, 4:] = 0.5
    return x


def test_on_the_hex_grid_the_frame_and_read_outs_are_the_drawn_bodys_not_the_sheared_arrays():
    from analysis.rollouts import image_positions

    body = _hex_diagonal_bar()
    pos = image_positions((30, 30), HEX)
    frame = P.reference_frame(body[None, ..., 3], 0.1, pos)
    on_array = P.reference_frame(body[None, ..., 3], 0.1)
    # each step along the bar: one spacing (2 / sqrt(3) px) up-right at 60 degrees as drawn
    # (the demo draws array rows upward); read on the array: sqrt(2) at 135 degrees
    assert frame.axis_deg == pytest.approx(60.0, abs=1.0) and on_array.axis_deg == pytest.approx(135.0, abs=1.0)
    m = S.body_measures(body[None], np.zeros((30, 30, 4)), frame, 0.1, HEX)
    sheared = S.body_measures(body[None], np.zeros((30, 30, 4)), on_array, 0.1)
    # 11 steps plus the bar's width seen along the axis (1/2 spacing), in px of the drawn image
    assert m["length"][0] == pytest.approx(11.5 * 2 / np.sqrt(3), abs=0.1) and sheared["length"][0] > 15.5
    front, back = (S.region_mask((30, 30), frame, r, pos) for r in ("front", "back"))
    alive = body[..., 3] > 0
    assert (front.astype(bool) & alive).sum() == (back.astype(bool) & alive).sum() == 12  # a straight cut


def test_a_hex_graft_moves_a_disc_as_drawn_by_a_lattice_translation():
    from analysis.rollouts import image_positions

    size, r = 30, 3.0
    rows, cols = image_positions((size, size), HEX)
    donor, host = (rows[10, 12], cols[10, 12]), (rows[20, 9], cols[20, 9])
    x = np.zeros((1, size, size, 16), np.float32)
    src = S.disc((size, size), donor, r, (rows, cols))
    x[0, ..., 7][src] = rows[src] * 100 + cols[src]  # each cell remembers where it was drawn
    g = S.graft(x, donor, host, r, HEX)
    dst = S.disc((size, size), host, r, (rows, cols))
    assert src.sum() == dst.sum() == 19  # a disc of 3 px (2.6 spacings) as drawn: 1 + 6 + 12 cells
    moved = g[0, ..., 7][dst] - (rows[dst] * 100 + cols[dst])  # where it was minus where it is
    shift = (donor[0] - host[0]) * 100 + (donor[1] - host[1])
    np.testing.assert_allclose(moved, shift, atol=1e-3)  # every cell moved by the same vector
    sheared = S.disc((size, size), donor, r)  # the array's "disc" is another set of cells
    assert (sheared != src).any()


def test_image_positions_put_each_hex_cell_where_the_resampled_image_draws_it():
    from analysis.rollouts import euclidean, image_positions, image_shift

    size = 40
    rows, cols = image_positions((size, size), HEX)
    for i, j in ((20, 20), (8, 30), (33, 12)):
        x = np.zeros((size, size, 1), np.float32)
        x[i, j, 0] = 1.0
        pr, pc = np.nonzero(euclidean(x, HEX)[..., 0])
        assert abs(pr.mean() - rows[i, j]) < 0.6 and abs(pc.mean() - cols[i, j]) < 0.6, (i, j)
    assert image_shift(rows[25, 10] - rows[20, 20], cols[25, 10] - cols[20, 20], HEX) == (5, -10)
    r, c = image_positions((size, size), CFG)
    assert (r[3, 4], c[3, 4]) == (3.0, 4.0) and image_shift(2.4, -1.6, CFG) == (2, -2)
