"""Issue 23, item 1: positional information must measure position, not reproducibility.

A smooth random field that is the same in every rollout but unrelated to the body (the
null, ``analysis.development.positional.fixed_field``) passes the old leave-one-replicate-out split
(a lookup "grid cell -> value" works when every rollout puts the body on the same cells)
and must fail the held-out-placement split; a code that is a function of body-frame
position must pass it. Both are planted here next to the published lizard."""

import jax
import numpy as np
import pytest

from analysis.development import positional as P
from analysis.representation.axes import BodyFrame
from nca.errors import NCAError

H = W = 48
# placements of the planted body: (centre row, centre col, axis deg): translated and rotated
PLANTED = ((24.0, 24.0, 30.0), (20.0, 28.0, 120.0), (27.0, 21.0, 210.0), (22.0, 22.0, 300.0), (26.0, 27.0, 75.0))
R = 2  # rollouts per placement


def _frame(r, c, axis):
    return BodyFrame((r, c), axis, 2.0, 0)


def _body(frame):
    g = P.coordinate_grid((H, W), frame)
    return (g[..., 0] / 14) ** 2 + (g[..., 1] / 7) ** 2 <= 1, g


def _code(g, rng):
    """A nonlinear, invertible code of body-frame position (per axis (cos pi u, sin 2 pi u):
    nearly uncorrelated with u), 4 channels + noise sd 0.02."""
    a, b = g[..., 0] / 14, g[..., 1] / 7
    ch = [np.cos(np.pi * a), np.sin(2 * np.pi * a), np.cos(np.pi * b), np.sin(2 * np.pi * b)]
    return np.stack(ch, -1) + rng.normal(0, 0.02, g.shape[:2] + (4,))


@pytest.fixture(scope="module")
def planted():
    """Per placement: cells (features of the body code, of the fixed field, body coords);
    also the per-rollout maps for sigma_x."""
    rng = np.random.default_rng(0)
    field = P.fixed_field((H, W), 4, 3.0, jax.random.key(5))
    out = {"code": [], "field": [], "y": [], "maps_code": [], "maps_field": [], "frames": [], "alive": []}
    for r0, c0, ax in PLANTED:
        fr = _frame(r0, c0, ax)
        alive, g = _body(fr)
        fc, ff, yy = [], [], []
        for _ in range(R):
            code = _code(g, rng)
            fc.append(code[alive])
            ff.append(field[alive])
            yy.append(g[alive])
            out["maps_code"].append(code)
            out["maps_field"].append(field)
            out["frames"].append(fr)
            out["alive"].append(alive)
        out["code"].append(np.concatenate(fc))
        out["field"].append(np.concatenate(ff))
        out["y"].append(np.concatenate(yy))
    return out


SETTINGS = P.PlacementSettings(max_train=1500, knn_ks=(1, 5, 20), ridge_alphas=(0.1, 10.0))


def _r2(s, probe):
    return float(np.nanmean(s[probe]["r2"]))


def test_the_old_replicate_split_is_fooled_by_a_fixed_field_the_placement_split_is_not(planted):
    # old split: rollouts of one placement, leave one rollout out (here 5 rollouts of placement 0)
    alive, g = _body(_frame(*PLANTED[0]))
    field = P.fixed_field((H, W), 4, 3.0, jax.random.key(5))
    old = P.probe_scores([field[alive]] * 5, [g[alive]] * 5, jax.random.key(0))
    assert _r2(old, "knn") > 0.9  # the audit's finding: a lookup passes
    new = P.held_out_placement_scores(planted["field"], planted["y"], jax.random.key(0), SETTINGS)
    for probe in ("knn", "ridge"):
        assert _r2(new, probe) < 0.1, probe
        assert np.nanmean(new[probe]["bits"]) < 0.1, probe


def test_a_body_frame_code_passes_the_placement_split_and_only_the_nonlinear_probe_reads_it(planted):
    s = P.held_out_placement_scores(planted["code"], planted["y"], jax.random.key(0), SETTINGS)
    assert _r2(s, "knn") > 0.9
    assert np.nanmean(s["knn"]["bits"][:, :2]) > 2
    for c in (0, 1):  # along, across: the code is nonlinear in each
        assert np.nanmean(s["ridge"]["r2"][:, c]) < 0.3 < np.nanmean(s["knn"]["r2"][:, c]) - 0.5
    assert _r2(s, "shuffled_knn") < 0.05 and _r2(s, "shuffled_ridge") < 0.05
    assert len(s["chosen"]["knn_k"]) == len(PLANTED)
    assert all(k in SETTINGS.knn_ks for k in s["chosen"]["knn_k"])


def test_inner_cross_validation_picks_a_small_k_for_a_clean_code_and_a_large_k_for_a_noisy_one():
    rng = np.random.default_rng(1)
    y = [rng.uniform(-10, 10, (400, 2)) for _ in range(4)]
    y = [np.c_[yy, np.hypot(yy[:, 0], yy[:, 1])] for yy in y]
    clean = [np.c_[yy[:, :2] / 10, rng.normal(0, 0.001, (400, 1))] for yy in y]
    noisy = [yy[:, :2] / 10 + rng.normal(0, 0.5, (400, 2)) for yy in y]
    k_clean, _ = P._inner_choice("knn", clean, y, [1, 5, 50], SETTINGS)
    k_noisy, scores = P._inner_choice("knn", noisy, y, [1, 5, 50], SETTINGS)
    assert k_clean < 50 and k_noisy == 50
    assert scores[50] > scores[1]


def test_sigma_x_of_a_linear_code_is_its_noise_over_its_slope():
    """Dubuis et al. 2013: sigma_x = sd / |dg/dx| for one feature; here two features, one per axis."""
    rng = np.random.default_rng(2)
    A, C = np.meshgrid(np.arange(-8, 9), np.arange(-4, 5), indexing="ij")
    g = np.zeros((30,) + A.shape + (3,))
    g[..., 0] = 2.0 * A + rng.normal(0, 0.1, g.shape[:3])
    g[..., 1] = 0.5 * C + rng.normal(0, 0.1, g.shape[:3])
    g[..., 2] = rng.normal(0, 0.1, g.shape[:3])  # a channel that knows nothing
    sig = P.summarise_sigma(P.positional_error(g, np.ones(A.shape, bool))["sigma"])
    assert sig["along"]["median"] == pytest.approx(0.05, rel=0.2)
    assert sig["across"]["median"] == pytest.approx(0.2, rel=0.2)


def test_sigma_x_counts_a_fixed_field_as_precise_unless_the_replicates_are_placed_differently(planted):
    def sigma(maps, frames, alive):
        lat = P.body_lattice(frames, (H, W), (10, 5))
        g = np.stack([P.sample_on_lattice(m, rc) for m, rc in zip(maps, lat["rc"])])
        a = np.stack([P.sample_on_lattice(al[..., None].astype(float), rc)[..., 0] for al, rc in zip(alive, lat["rc"])])
        return P.summarise_sigma(P.positional_error(g, (a > 0.5).all(0))["sigma"])["along"]["median"]

    code = sigma(planted["maps_code"], planted["frames"], planted["alive"])
    field = sigma(planted["maps_field"], planted["frames"], planted["alive"])
    assert code < 0.1 and field > 5 * code  # placed replicates: the field is imprecise
    same = [planted["frames"][0]] * 4  # replicates of one placement: the field is "exact"
    assert sigma([planted["maps_field"][0]] * 4, same, [planted["alive"][0]] * 4) < 1e-3


def test_bad_placement_settings_are_one_clear_error():
    with pytest.raises(NCAError, match="placements"):
        P.PlacementSettings(placements=P.DEFAULT_PLACEMENTS[:2])
    with pytest.raises(NCAError, match="placements"):
        P.PlacementSettings(placements=(P.Placement(),) * 3)
    with pytest.raises(NCAError, match="at least 3"):
        P.held_out_placement_scores([np.zeros((5, 2))] * 2, [np.zeros((5, 3))] * 2, jax.random.key(0))


# ------------------------------------------------------------------ the published lizard

LIZARD = P.PlacementSettings(
    steps=100, replicates=1, margin=6, max_cells=300, max_train=900, knn_ks=(1, 5, 20), ridge_alphas=(1.0, 100.0),
    null_smooth_px=(3.0,),
    placements=(P.Placement((0, 0), 0.0), P.Placement((5, -5), 180.0), P.Placement((-5, 5), 0.0),
                P.Placement((4, 4), 180.0)))


@pytest.fixture(scope="module")
def lizard():
    import nca

    model = nca.load_model("distill:lizard/regenerating")
    grown = P.grow_placements(model, LIZARD, jax.random.key(0))
    return model, grown["states"]


def test_the_lizard_passes_the_placement_split_and_the_fixed_field_on_its_cells_fails(lizard):
    model, states = lizard
    r = P.placement_analysis(model, states, LIZARD, jax.random.key(1))
    # the rotated bodies' frames turn with them (the axis is oriented, not modulo 180)
    axes = [f["axis_deg"] for f in r["frames"]]
    assert abs((axes[1] - axes[0]) % 360 - 180) < 5
    liz, null = r["model"]["probes"], r["fixed_field_3px"]["probes"]
    for c in ("along", "across"):
        assert liz["knn"][c]["r2"]["mean"] > 0.8, c
        assert null["knn"][c]["r2"]["mean"] < 0.1 and null["ridge"][c]["r2"]["mean"] < 0.1, c
        assert liz["knn"][c]["bits"]["mean"] > 1.5 and null["knn"][c]["bits"]["mean"] < 0.2, c
    # not linearly: ridge reads much less than kNN, and still more than the null
    assert liz["ridge"]["along"]["r2"]["mean"] < liz["knn"]["along"]["r2"]["mean"] - 0.2
    assert r["model"]["sigma_x"]["along"]["median"] < r["fixed_field_3px"]["sigma_x"]["along"]["median"]


def test_no_body_is_a_null_reason_not_a_crash():
    from types import SimpleNamespace

    from nca.model import ModelConfig

    model = SimpleNamespace(model_config=ModelConfig())
    states = np.zeros((3, 1, 16, 16, 16), np.float32)
    r = P.placement_analysis(model, states, P.PlacementSettings(placements=P.DEFAULT_PLACEMENTS[:3], replicates=1),
                             jax.random.key(0))
    assert "fewer than 20 alive cells" in r["null_reason"]
