"""Damage shapes (nca.damage): the article's training discs, the regeneration cuts, discs
at a step, their text specs. Each mask is checked against what it names."""

import jax
import numpy as np
import pytest

from nca.damage import CUTS, Cut, Disc, circle_masks, damage_mask, parse_cut, parse_damage
from nca.errors import NCAError

SIZES = [(72, 72), (31, 45), (40, 33)]  # square, and odd sides either way


# --------------------------------------------------------------------------- training discs


def test_circle_masks_follow_the_article_distribution():
    m = np.asarray(circle_masks(jax.random.key(0), 2000, 64, 64))
    area = m.mean(axis=(1, 2))
    # radius U(0.1, 0.4) in a [-1, 1] box: area fraction pi r^2 / 4 in [0.008, 0.126]
    assert area.min() > 0.004 and area.max() < 0.13
    expected_mean = np.pi / 4 * np.mean(np.random.default_rng(0).uniform(0.1, 0.4, 100000) ** 2)
    assert abs(area.mean() - expected_mean) < 0.005
    ys, xs = np.mgrid[0:64, 0:64]
    cx = (m * xs).sum((1, 2)) / m.sum((1, 2))
    assert 64 * 0.2 < cx.min() and cx.max() < 64 * 0.8  # centres in U(-0.5, 0.5)


def test_circle_masks_are_0_1_float_discs_of_the_grid_shape_fixed_by_the_key():
    m = np.asarray(circle_masks(jax.random.key(3), 5, 24, 40))
    assert m.shape == (5, 24, 40) and m.dtype == np.float32
    assert set(np.unique(m)) <= {0.0, 1.0} and m.any((1, 2)).all()
    np.testing.assert_array_equal(m, np.asarray(circle_masks(jax.random.key(3), 5, 24, 40)))
    assert not np.array_equal(m, np.asarray(circle_masks(jax.random.key(4), 5, 24, 40)))
    # a disc is convex: every erased row is one run of columns
    for disc in m.astype(bool):
        for row in disc[disc.any(1)]:
            cols = np.nonzero(row)[0]
            assert cols[-1] - cols[0] + 1 == len(cols)


# --------------------------------------------------------------------------- cuts


@pytest.mark.parametrize("h,w", SIZES)
def test_every_cut_is_a_bool_mask_of_the_grid(h, w):
    for part in CUTS:
        m = Cut(0, part).mask(h, w)
        assert m.shape == (h, w) and m.dtype == bool and m.any() and not m.all()


@pytest.mark.parametrize("h,w", SIZES)
def test_halves_split_at_the_seed_and_partition_the_grid(h, w):
    cy, cx = h // 2, w // 2
    left, right, top, bottom = (Cut(0, p).mask(h, w) for p in ("left", "right", "top", "bottom"))
    np.testing.assert_array_equal(np.nonzero(left.any(0))[0], np.arange(cx))  # whole columns 0 .. cx - 1
    assert left[:, :cx].all() and not left[:, cx:].any()
    assert top[:cy].all() and not top[cy:].any()
    np.testing.assert_array_equal(right, ~left)
    np.testing.assert_array_equal(bottom, ~top)
    assert not left[cy, cx] and not top[cy, cx]  # the seed cell survives left and top cuts


def test_a_left_cut_removes_exactly_the_left_half_of_a_body_centred_on_the_seed():
    h = w = 40
    ii, jj = np.mgrid[:h, :w]
    body = ((ii - h // 2) ** 2 + (jj - w // 2) ** 2 <= 12 ** 2)  # a disc body around the seed
    x = np.where(body[..., None], 1.0, 0.0) * np.ones((1, 1, 16), np.float32)
    cut = x * (1 - Cut(0, "left").mask(h, w))[..., None]
    alive = cut[..., 3] > 0.1
    cols = np.nonzero(body.any(0))[0]
    np.testing.assert_array_equal(np.nonzero(alive.any(0))[0], cols[cols >= w // 2])
    np.testing.assert_array_equal(alive, body & (jj >= w // 2))  # the right half untouched
    assert not cut[:, : w // 2].any()  # all channels of the erased cells are 0


@pytest.mark.parametrize("h,w", SIZES)
def test_the_square_cut_is_a_third_of_each_side_around_the_seed(h, w):
    sq = Cut(0, "square").mask(h, w)
    rows, cols = np.nonzero(sq.any(1))[0], np.nonzero(sq.any(0))[0]
    assert len(rows) == h // 3 and len(cols) == w // 3 and sq.sum() == (h // 3) * (w // 3)
    assert sq[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()  # one solid block
    assert sq[h // 2, w // 2]
    assert abs((rows[0] + rows[-1]) / 2 - h // 2) <= 0.5 and abs((cols[0] + cols[-1]) / 2 - w // 2) <= 0.5


# --------------------------------------------------------------------------- discs and unions


def test_damage_masks_erase_what_they_name():
    m = Disc(0, 10, 20, 3).mask(32, 40)
    ii, jj = np.nonzero(m)
    assert m.shape == (32, 40) and m[20, 10] and m[20, 13] and m[23, 10]
    assert not m[20, 14] and not m[22, 13]  # distance sqrt(13) > 3
    assert np.all((jj - 10) ** 2 + (ii - 20) ** 2 <= 9) and m.sum() == 29
    assert Disc(0, 10, 20, 0).mask(32, 40).sum() == 1  # r = 0: the centre cell only


def test_fraction_discs_scale_with_the_grid():
    frac = Disc(0, 0.25, 0.5, 0.125, fraction=True)
    assert frac.in_cells(40, 80) == (20.0, 20.0, 5.0)  # r in units of the smaller side
    np.testing.assert_array_equal(frac.mask(40, 80), Disc(0, 20, 20, 5).mask(40, 80))


def test_the_union_of_events_is_the_or_of_their_masks_and_describe_counts_it():
    events = [Disc(5, 6, 6, 4), Cut(9, "right"), Cut(9, "square")]
    u = damage_mask(events, 30, 30)
    np.testing.assert_array_equal(u, events[0].mask(30, 30) | events[1].mask(30, 30) | events[2].mask(30, 30))
    assert u.dtype == bool and not damage_mask([], 30, 30).any()
    for e in events:
        assert e.describe(30, 30)["erased_cells"] == int(e.mask(30, 30).sum())


def test_the_animate_and_train_names_are_the_same_objects():
    import nca.animate
    import nca.train

    assert nca.animate.Cut is Cut and nca.animate.CUTS is CUTS and nca.animate.parse_cut is parse_cut
    assert nca.train.circle_masks is circle_masks


# --------------------------------------------------------------------------- specs


def test_cut_specs_name_a_step_and_a_part():
    assert [parse_cut(f"{i}:{p}") for i, p in enumerate(CUTS)] == [Cut(i, p) for i, p in enumerate(CUTS)]
    assert parse_cut("200: left ") == Cut(200, "left")


def test_damage_units_cells_and_fractions():
    cells = parse_damage("120:36,30,10")
    assert cells == Disc(120, 36.0, 30.0, 10.0, fraction=False)
    frac = parse_damage("120:0.5,0.25,0.125")
    assert frac.fraction and frac.in_cells(72, 72) == (36.0, 18.0, 9.0)
    assert not parse_damage("5:1,1,1").fraction  # no decimal point: cells
    assert parse_damage("5:0,1,0.5").fraction
    # the same disc in both units erases the same cells
    assert np.array_equal(parse_damage("0:0.5,0.5,0.25").mask(72, 72), Disc(0, 36, 36, 18).mask(72, 72))


@pytest.mark.parametrize("spec", ["abc", "10", "10:1,2", "x:1,2,3", "10:1,2,-3", "10:a,b,c",
                                  "10:0.5,0.5,10", "-5:1,2,3", "10:1,2,3,4", "10:nan,1,1"])
def test_bad_damage_specs(spec):
    with pytest.raises(NCAError, match="^bad damage"):  # the library names no flags
        parse_damage(spec)


@pytest.mark.parametrize("spec", ["left", "10:middle", "10:", ":left"])
def test_bad_cut_specs(spec):
    with pytest.raises(NCAError, match="^bad cut"):
        parse_cut(spec)


def test_circle_masks_are_the_same_eager_and_jitted():
    # circle_masks is jitted (one program for an eager caller); the op-by-op masks must match
    # bit for bit, or the analyses' wounds would move by a boundary pixel.
    for i, (n, h, w) in enumerate([(1, 72, 72), (8, 36, 36), (5, 24, 40)]):
        key = jax.random.key(i)
        with jax.disable_jit():
            eager = np.asarray(circle_masks(key, n, h, w))
        np.testing.assert_array_equal(np.asarray(circle_masks(key, n, h, w)), eager)
