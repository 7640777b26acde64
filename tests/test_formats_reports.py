"""The reports on models trained elsewhere: the isotropic demo's hex-grid variant, a texture
NCA (no body: refused in one line) and a PyTorch import given as a spec with options.

Small grids and few steps: these check that each report runs end to end on each variant
and that the knockouts read a variant's perception bands right (an invariant with a
planted truth), not what the reports find.
"""

import json

import jax
import numpy as np
import pytest

import nca
from analysis.causal import knockouts as K
from analysis.reports import pca as pca_report
from analysis.reports import knockouts as KR
from nca.errors import NCAError
from nca.formats import torch_layouts as tl


@pytest.fixture(scope="module")
def iso():
    return nca.load_model("isonca:lizard")


def test_hex_variant_channel_knockouts_as_unread_weights_equal_the_state_hook_knockouts(iso):
    """The read knockout zeroes every perception band of a channel (2 here: identity and
    Laplacian); it must equal zeroing the channel in the state each step."""
    cfg = iso.model_config
    assert cfg.kernels == 2
    seed = np.asarray(nca.seed_state(24, 24, cfg, batch=2))
    key = jax.random.key(6)
    target = np.asarray(jax.random.uniform(jax.random.key(7), (24, 24, 4)))
    grown, _ = nca.grow(iso, 40, key, x0=jax.device_put(seed), record=())
    start = K.Start("persistence", np.asarray(grown), 40, 20)
    sets = [(), (6,), (4, 11)]
    fast, img = K.read_ablation_losses(iso.params, cfg, start, key, target, sets, chunk=3)
    hooked, img_h = K.ablation_losses(iso.params, cfg, start, key, target,
                                      K.none_ablation(16) + K.channel_ablations(sets[1:], 16), chunk=3)
    np.testing.assert_allclose(fast, hooked, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(img, img_h, atol=1e-4)
    assert abs(fast[2] - fast[0]).max() > 1e-4  # the knockout does something


def test_knockout_report_runs_on_the_hex_variant_with_self_repair(iso, tmp_path):
    s = KR.KnockoutReportSettings(
        models=("isonca:lizard",), command="variant test",
        knockouts=K.KnockoutSettings(grow=24, persist=4, regrow=4, replicates=2, pcs=0, pairs=(),
                                     unit_condition=None, repair_at=(3,), repair_attribute=False,
                                     repair_units=False, size=32))
    KR.write(KR.run(s), tmp_path)
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["models"] == ["isonca:lizard"] and (tmp_path / "index.html").stat().st_size > 1000


def test_damage_report_on_the_hex_variant_draws_wounds_in_the_bodys_frame_and_says_so(iso):
    """The damage report runs on the hex variant, its ring wound is the Euclidean ring
    (``damage_assays.wound_grid``), and report.json says where each thing is measured."""
    from analysis.development import damage_assays as D
    from analysis.reports import damage as DR

    s = DR.DamageReportSettings(models=("isonca:lizard",), damage=D.DamageSettings(
        protocol=D.Protocol(grow_steps=60, regrow_steps=4, replicates=1, every=2), panel=("ring", "scatter"),
        size=40))
    res = DR.run(s, models=[iso])
    assert "Euclidean frame" in res.report["conventions"]["geometry"]
    assert set(res.report["results"][0]["damages"]) == {"ring", "scatter"}


def test_pca_report_runs_on_the_hex_variant_without_a_viewer(tmp_path):
    s = pca_report.PCAReportSettings(model="isonca:lizard", at=(40,), replicates=1, every=40, regrow=0,
                                     rotations=(), compare=(), components=2, surrogates=99, bootstrap=10, size=32)
    pca_report.write(pca_report.run(s), tmp_path)
    assert (tmp_path / "index.html").is_file() and (tmp_path / "report.json").is_file()
    assert not (tmp_path / "viewer.html").exists()  # the WebGL viewer runs the article's CA only
    rep = json.loads((tmp_path / "report.json").read_text())
    assert "resampled" in rep["conventions"]["geometry"]  # measured in the body's geometry, and says so


def test_texture_models_are_refused_by_the_body_reports_and_the_viewer_in_one_line(tmp_path):
    from analysis.viewer import write_viewer

    with pytest.raises(NCAError, match="grows a texture, not a body"):
        pca_report.preflight(pca_report.PCAReportSettings(model="texture:dots"))
    with pytest.raises(NCAError, match="grows a texture, not a body"):
        K.run([nca.load_model("texture:dots")], K.KnockoutSettings(size=16))
    with pytest.raises(NCAError, match="the viewer runs the article's architecture only.*perception='sobel.laplacian'"):
        write_viewer(nca.load_model("texture:dots"), tmp_path / "v.html")


def test_pca_report_and_viewer_run_on_a_pytorch_import_given_as_a_spec(tmp_path):
    lizard = nca.load_model("distill:lizard/persistent")
    sd = tl.from_params({k: np.asarray(v) for k, v in lizard.params.items()}, tl.LAYOUTS["torch-linear"],
                        tl.Variant(True))
    np.savez(tmp_path / "lizard.npz", **sd)
    spec = f"{tmp_path / 'lizard.npz'}@layout=torch-linear,transposed=true"
    s = pca_report.PCAReportSettings(model=spec, at=(40,), replicates=1, every=40, regrow=0, rotations=(),
                                     compare=(), components=2, surrogates=99, bootstrap=10, size=40)
    out = tmp_path / "r"
    pca_report.write(pca_report.run(s), out)  # reloads the model from the report's name: the full spec
    rep = json.loads((out / "report.json").read_text())
    assert rep["model"] == spec
    assert (out / "viewer.html").stat().st_size > 1000 and (out / "index.html").is_file()


def test_development_positional_part_on_the_hex_variant_measures_in_the_bodys_frame(iso):
    """On the hex grid the positional part reads the states resampled to the body's Euclidean
    frame: its body is the resampled body (alive pixels of ``euclidean``), not the axial
    array's cells; activations, which the resampling would break, are one clear error."""
    from analysis.development import parts as Dv
    from analysis.development import positional as P
    from analysis.rollouts import euclidean, grow_states

    pos = P.PositionalSettings(steps=40, every=40, features="hidden", replicates=2)
    s = Dv.DevelopmentSettings(parts=("positional",), positional=pos, placement=None, grid=40)
    key = jax.random.key(0)
    out = Dv.run(iso, s, key)["positional"]
    states = grow_states(iso, 40, jax.random.fold_in(key, Dv.STREAM_POSITIONAL), seeds=2, size=40)
    thr = iso.model_config.alive_threshold
    resampled = P.reference_frame(euclidean(states[40], iso.model_config)[..., 3], thr)
    on_array = P.reference_frame(states[40, ..., 3], thr)
    assert out["frame"]["n_alive"] == resampled.n_alive != on_array.n_alive
    assert out["frame"]["axis_deg"] == pytest.approx(resampled.axis_deg)
    with pytest.raises(NCAError, match="hex grid"):
        Dv.run(iso, Dv.DevelopmentSettings(parts=("positional",), positional=P.PositionalSettings(
            steps=40, every=40, features="mlp", replicates=2), placement=None, grid=40), key)


def test_development_steering_and_transplant_on_the_hex_variant_place_everything_in_the_bodys_frame(iso):
    """Steering's frame and the transplant's discs sit where the resampled image draws the
    cells: the frame is the drawn body's (the same as the positional part's, which resamples
    the states), not the sheared array's (the geometry itself: tests/test_steering.py)."""
    from analysis.causal import steering as S
    from analysis.development import parts as Dv
    from analysis.development import positional as P

    s = Dv.DevelopmentSettings(parts=("steering", "transplant"), placement=None, grid=40,
                               steering=S.SteeringSettings(steps=40, doses=(0.0, 2.0), replicates=2, n_pcs=1,
                                                           n_random=2),
                               transplant=S.TransplantSettings(t_graft=40, after=10, every=10, replicates=2))
    out = Dv.run(iso, s, jax.random.key(0))
    steer, tr = out["steering"], out["transplant"]
    thr = iso.model_config.alive_threshold
    drawn = P.reference_frame(np.asarray(steer["images"])[0, 0][None, ..., 3], thr)  # dose 0, replicate 0
    assert np.asarray(steer["images"]).shape[-3:] == (40, 40, 4)
    assert np.hypot(*np.subtract(steer["frame"]["centroid_rc"], drawn.centroid_rc)) < 1.5  # where it is drawn
    grafted = np.asarray(tr["images"]["grafted"])
    assert grafted.shape[-3:] == (40, 40, 4) and np.hypot(*np.subtract(tr["donor_rc"], tr["host_rc"])) > 2
