"""The cell atlas (analysis/representation/atlas.py, analysis/reports/atlas.py, scripts/atlas_report.py,
scripts/export_h5ad.py): every measure finds what is planted and nothing in its null, the
export opens in scanpy and squidpy untouched, and every bad input is one line.

Planted data are small (a few hundred cells) with fixed seeds; the CA parts run the
published regenerating lizard on a 32 x 32 grid for a few steps.
"""

import dataclasses
import json
import sys

import jax
import numpy as np
import pytest

from analysis.representation import atlas as A
from nca.errors import NCAError

pytest.importorskip("anndata")
pytest.importorskip("leidenalg")


def _blobs(rng, k=3, per=100, dims=16, sep=6.0):
    centres = rng.normal(0, sep, (k, dims))
    X = np.concatenate([c + rng.normal(0, 1, (per, dims)) for c in centres])
    return X, np.repeat(np.arange(k), per)


# --------------------------------------------------------------------------- types

def test_planted_types_are_recovered_and_beat_the_channel_shuffled_null():
    rng = np.random.default_rng(0)
    X, truth = _blobs(rng)
    lab, q = A.leiden(A.zscore(X), clusters=3)
    assert A.ari(lab, truth) > 0.95
    _, q_free = A.leiden(A.zscore(X))  # the default resolution: modularity far above the null's
    nulls = [A.leiden(A.zscore(A.shuffle_channels(X, rng)))[1] for _ in range(3)]
    assert q_free > max(nulls) + 0.2


def test_a_field_without_types_gives_no_more_types_than_its_null():
    rng = np.random.default_rng(1)
    X = rng.normal(0, 1, (300, 16))  # one population: every channel independent
    lab, q = A.leiden(A.zscore(X))
    nulls = [A.leiden(A.zscore(A.shuffle_channels(X, rng))) for _ in range(3)]
    assert lab.max() + 1 <= max(n[0].max() + 1 for n in nulls) + 1
    assert q < max(n[1] for n in nulls) + 0.03


def test_types_are_ordered_by_size_and_the_ari_sees_relabelling_but_not_chance():
    rng = np.random.default_rng(2)
    X, truth = _blobs(rng, k=3, per=60)
    lab, _ = A.leiden(A.zscore(X), clusters=3)
    assert (np.diff(np.bincount(lab)) <= 0).all()
    assert A.ari(lab, (lab + 1) % 3) == pytest.approx(1.0)
    assert abs(A.ari(lab, rng.permutation(lab))) < 0.05
    rc = np.stack(np.divmod(np.arange(len(lab)), 20), 1)
    assert A.positional_ari(lab, rc, lab, rc) == (pytest.approx(1.0), len(lab))
    assert np.isnan(A.positional_ari(lab, rc, lab, rc + 1000)[0])  # no shared position


def test_marker_channels_find_the_planted_marker_with_an_interval():
    rng = np.random.default_rng(3)
    X = rng.normal(0, 1, (400, 6))
    lab = np.repeat([0, 1], 200)
    X[lab == 1, 4] += 3.0  # channel 4 marks type 1
    groups = np.tile(np.arange(4), 100)  # four "replicates"
    mk = A.markers(X, lab, groups, [f"c{i}" for i in range(6)])
    d = mk[1]["d"]["c4"]
    assert mk[1]["top"][0] == "c4" and d["lo"] > 2 and d["n"] == 4
    for j in (0, 1, 2, 3, 5):  # no marker: the interval covers 0
        c = mk[1]["d"][f"c{j}"]
        assert c["lo"] < 0 < c["hi"] or abs(c["mean"]) < 0.3


# --------------------------------------------------------------------------- space

def _grid(n=20):
    r, c = np.divmod(np.arange(n * n), n)
    return r, c


def test_morans_i_detects_a_planted_gradient_and_not_its_shuffle():
    rng = np.random.default_rng(4)
    r, c = _grid()
    W = A.grid_adjacency(r, c)
    assert W.sum() == 2 * 2 * 20 * 19  # rook edges of a 20 x 20 grid, both directions
    smooth = c + rng.normal(0, 2, len(c))  # a left-right gradient with noise
    vals = np.stack([smooth, rng.permutation(smooth), np.ones(len(c))], 1)
    t = A.moran_test(vals, W, 199, rng)
    assert t["I"][0] > 0.5 and t["p"][0] == pytest.approx(1 / 200) and t["p_holm"][0] < 0.05
    assert abs(t["I"][1]) < 0.1 and t["p"][1] > 0.05
    assert np.isnan(t["I"][2]) and np.isnan(t["p"][2])  # a constant channel has no I


def test_neighbourhood_enrichment_sees_planted_territories_and_not_random_labels():
    rng = np.random.default_rng(5)
    r, c = _grid()
    W = A.grid_adjacency(r, c)
    halves = (c >= 10).astype(int)
    z = A.nhood_enrichment(halves, W, 99, rng)["z"]
    assert z[0, 0] > 5 and z[1, 1] > 5 and z[0, 1] < -5
    zr = A.nhood_enrichment(rng.permutation(halves), W, 99, rng)["z"]
    assert np.abs(zr).max() < 3.5


# --------------------------------------------------------------------------- time

def test_pseudotime_recovers_a_planted_time_and_not_a_random_one():
    rng = np.random.default_rng(6)
    t = np.sort(rng.uniform(0, 1, 600))
    curve = np.stack([np.cos(4 * t), np.sin(4 * t), 2 * t], 1)  # a curved trajectory in 3 of 10 dims
    X = np.concatenate([curve * 3, np.zeros((600, 7))], 1) + rng.normal(0, 0.1, (600, 10))
    from analysis.representation.axes import spearman

    dpt = A.diffusion_pseudotime(A.zscore(X), root=0)
    assert np.isfinite(dpt).all() and dpt[0] == 0 and spearman(dpt, t) > 0.9
    blob = rng.normal(0, 1, (600, 10))  # no trajectory: the "time" is a label unrelated to the state
    d0 = A.diffusion_pseudotime(blob, root=int(np.argmin(t)))
    assert abs(spearman(d0, rng.permutation(t))) < 0.15


def test_cell_ages_count_steps_since_a_position_came_alive():
    from analysis.reports.atlas import cell_ages

    alive = np.zeros((4, 1, 3), bool)
    alive[:, 0, 0] = True  # alive from the start
    alive[2:, 0, 1] = True  # born at frame 2
    alive[[0, 1, 3], 0, 2] = True  # dies at frame 2, reborn at 3
    ages = cell_ages(alive, [0, 4, 8, 12])
    assert ages[:, 0, 0].tolist() == [0, 4, 8, 12] and ages[:, 0, 1].tolist() == [0, 0, 0, 4]
    assert ages[:, 0, 2].tolist() == [0, 4, 0, 0]


def test_born_cells_take_the_nearest_living_cell_as_parent():
    prev = np.array([[0, 0], [5, 5]])
    assert A.born_parents(prev, np.array([[0, 1], [5, 6], [4, 5]])).tolist() == [0, 1, 1]


# --------------------------------------------------------------------------- export

@pytest.fixture(scope="module")
def lizard():
    import nca

    return nca.load_model("distill:lizard/regenerating")


@pytest.fixture(scope="module")
def exported(lizard):
    return A.export(lizard, steps=16, every=8, replicates=2, size=32)


def test_the_export_holds_the_cells_their_velocity_and_activations(lizard, exported):
    import nca

    a = exported
    assert a.n_vars == 16 and list(a.var_names[:5]) == ["R", "G", "B", "A", "h0"]
    assert (a.var["kind"] == "hidden").sum() == 12
    assert set(a.obs["step"]) == {0, 8, 16} and set(a.obs["replicate"]) == {"0", "1"}
    assert ((a.obs["step"] == 0).sum()) == 2  # the seed cell, once per replicate
    assert (a.X[:, 3] > 0.1).all()  # only living cells
    assert a.layers["velocity"].shape == a.X.shape and a.obsm["mlp_hidden"].shape == (a.n_obs, 128)
    np.testing.assert_array_equal(a.obsm["spatial"], a.obs[["col", "row"]].to_numpy())
    # the seed's velocity and hidden activations are what the rule computes from the seed
    seed = nca.seed_state(32, 32, lizard.model_config)
    _, tr = nca.grow(lizard, 1, jax.random.key(0), x0=seed, record=("hidden", "update"))
    i = np.flatnonzero((a.obs["step"] == 0).to_numpy())[0]
    np.testing.assert_allclose(a.layers["velocity"][i], np.asarray(tr.update[0])[16, 16], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.obsm["mlp_hidden"][i], np.asarray(tr.hidden[0])[16, 16], rtol=1e-5, atol=1e-6)
    grown = a.obs[a.obs["step"] == 16]
    assert np.abs(grown["body_along"]).max() > 1 and np.isfinite(grown["body_across"]).all()


def test_the_export_opens_in_scanpy_and_squidpy_untouched(exported, tmp_path):
    sc = pytest.importorskip("scanpy")
    sq = pytest.importorskip("squidpy")
    path = tmp_path / "cells.h5ad"
    A.write_h5ad(exported, path)
    a = sc.read_h5ad(path)
    assert a.shape == exported.shape and [p.name for p in tmp_path.iterdir()] == ["cells.h5ad"]
    sc.pp.neighbors(a, n_neighbors=10, use_rep="X", method="gauss")  # (umap's numba compile: 5 s)
    sc.tl.leiden(a, flavor="igraph", n_iterations=2, directed=False)
    assert a.obs["leiden"].nunique() >= 1
    g = a[a.obs["frame"] == "r0_t16"].copy()
    sq.gr.spatial_neighbors_grid(g, n_neighs=4)  # squidpy >= 1.8.2 (spatial_neighbors is deprecated there)
    sq.gr.spatial_autocorr(g, mode="moran", n_perms=None, n_jobs=1, transformation=False)  # binary weights, as ours
    ours = A.morans_i(g.X, A.grid_adjacency(g.obs["row"], g.obs["col"]))
    theirs = g.uns["moranI"]["I"].reindex(g.var_names).to_numpy()
    ok = np.isfinite(ours) & np.isfinite(theirs)
    assert ok.sum() >= 12
    np.testing.assert_allclose(ours[ok], theirs[ok], atol=1e-4)  # the same Moran's I as squidpy's


# --------------------------------------------------------------------------- report and bad input

def test_the_report_runs_on_a_grown_lizard_and_is_json(lizard, tmp_path):
    from analysis.reports import atlas as R
    from analysis.reports.html import json_safe

    s = R.AtlasSettings(steps=32, every=8, replicates=2, neighbors=8, permutations=19, null_draws=3, regrow=8,
                        max_cells=300, size=32)
    res = R.run(R.AtlasReportSettings(("x",), s), models=[lizard])
    r = res.report["results"][0]
    assert r["types"]["n_types"] >= 2 and r["types"]["replicate_ari"]["n"] == 1
    assert r["null_shuffled"]["modularity"]["n"] == 3 and r["null_shuffled"]["full_draws"] == 2
    assert r["types"]["beyond_null"] == (r["types"]["modularity_p"] <= 0.05) and "modularity_z" in r["types"]
    assert r["types"]["modularity_p"] in (0.25, 0.5, 0.75, 1.0)
    assert len(r["moran"]["I"]) == 16 and r["pseudotime"]["spearman"]["n"] == 2
    d = r["derivation"]
    assert d["born"] > 0 and 0 <= d["same_type_chance"] <= 1 and len(r["markers"]) == r["types"]["n_types"]
    assert np.sum(d["parent_to_child"]) == d["born"]
    json.dumps(json_safe(res.report), allow_nan=False)
    lines = R.summary_lines(res)
    assert len(lines) == 4 and all(line.startswith(lizard.name) for line in lines)
    R.write(res, tmp_path / "r")
    assert (tmp_path / "r" / "index.html").read_bytes().count(b"docs/atlas.md")


def test_a_model_with_no_living_cells_is_one_line(lizard):
    from analysis.reports import atlas as R

    p = dict(lizard.params)
    b2 = np.zeros_like(np.asarray(p["b2"]))
    b2[3] = -5.0  # every cell that fires loses its alpha: the seed dies
    dead = dataclasses.replace(lizard, params={**p, "w2": np.zeros_like(np.asarray(p["w2"])), "b2": b2})
    with pytest.raises(NCAError, match="has no living cells after 16 steps"):
        R.run_model(dead, R.AtlasSettings(steps=16, every=8, replicates=1, size=32))
    with pytest.raises(NCAError, match="no living cells in any recorded step"):
        A.rollout_cells(dead, np.zeros((2, 1, 8, 8, 16), np.float32), [0, 8])


def test_more_clusters_than_cells_is_one_line():
    X = np.random.default_rng(7).normal(0, 1, (20, 4))
    with pytest.raises(NCAError, match="50 clusters requested but there are only 20 cells"):
        A.leiden(X, clusters=50)


def test_a_missing_extra_is_one_line_and_the_core_does_not_need_it(monkeypatch, tmp_path, capsys):
    import importlib

    for name in ("anndata", "leidenalg"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    importlib.reload(A)  # the module itself imports without them
    with pytest.raises(NCAError, match=r"needs the optional package\(s\) anndata, leidenalg: pip install"):
        A.require()
    with pytest.raises(NCAError, match="leidenalg"):
        A.leiden(np.zeros((10, 2)))
    from scripts import atlas_report, export_h5ad

    with pytest.raises(NCAError, match="pip install -e '.\\[atlas\\]'"):
        atlas_report.main(["distill:lizard/regenerating", "--out", str(tmp_path / "r")])
    with pytest.raises(NCAError, match="anndata"):
        export_h5ad.main(["distill:lizard/regenerating", "--out", str(tmp_path / "c.h5ad")])
    assert not (tmp_path / "r").exists() and not (tmp_path / "c.h5ad").exists()


def test_the_export_script_writes_an_h5ad_and_refuses_another_suffix(tmp_path, capsys):
    from scripts import export_h5ad

    with pytest.raises(NCAError, match="must end in .h5ad"):
        export_h5ad.main(["distill:lizard/regenerating", "--out", str(tmp_path / "c.csv")])
    assert export_h5ad.main(["distill:lizard/regenerating", "--out", str(tmp_path / "c.h5ad"), "--steps", "8",
                             "--every", "4", "--replicates", "1", "--size", "32"]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'c.h5ad'}: ")
    import anndata

    assert anndata.read_h5ad(tmp_path / "c.h5ad").n_obs > 1
    assert export_h5ad.main(["distill:lizard/regenerating", "--out", str(tmp_path / "s.h5ad"), "--steps", "8",
                             "--every", "4", "--replicates", "1", "--size", "32", "--somatic", "0.1"]) == 0
    assert "clone" in anndata.read_h5ad(tmp_path / "s.h5ad").obs


def test_a_somatic_export_gives_each_cell_its_clone_parent_birth_and_genome(lizard, tmp_path):
    """Issue 27: the clone id where genomes are on. Planted negative: mutation rate 0 keeps
    one founder clone everywhere. Positive: with mutation, every mutant clone was founded at
    a birth no later than the cell's step, from an existing clone, and the cell carries that
    clone's genome (a founder's is 0); the file keeps them."""
    import anndata

    none = A.export_somatic(lizard, steps=32, every=16, replicates=1, mutation_rate=0.0, size=40)
    assert none.obs["clone"].unique().tolist() == ["0"] and (none.obs["clone_parent"] == -1).all()
    assert not none.obsm["genome"].any()
    a = A.export_somatic(lizard, steps=32, every=16, replicates=2, mutation_rate=0.2, size=40)
    clone = a.obs["clone"].astype(int).to_numpy()
    mutant = clone > 0
    assert mutant.any() and (clone == 0).any()
    assert ((a.obs["clone_parent"].to_numpy()[mutant] >= 0)
            & (a.obs["clone_parent"].to_numpy()[mutant] < clone[mutant])).all()
    born = a.obs["clone_born"].to_numpy()[mutant]
    assert ((born >= 0) & (born < a.obs["step"].to_numpy()[mutant])).all()
    assert not a.obsm["genome"][~mutant].any() and np.abs(a.obsm["genome"][mutant]).sum(1).min() > 0
    A.write_h5ad(a, tmp_path / "c.h5ad")
    back = anndata.read_h5ad(tmp_path / "c.h5ad")
    assert (back.obs["clone"].astype(int).to_numpy() == clone).all() and back.obsm["genome"].shape[1] == 4
    with pytest.raises(NCAError, match="genome size"):
        A.export_somatic(lizard, steps=8, every=8, genome_size=17)
    with pytest.raises(NCAError, match="multiple of every"):
        A.export_somatic(lizard, steps=10, every=4)


def test_settings_refuse_bad_values():
    from analysis.reports.atlas import AtlasSettings

    with pytest.raises(NCAError, match="multiples of every"):
        AtlasSettings(steps=10, every=4)
    with pytest.raises(NCAError, match="resolution must be > 0"):
        AtlasSettings(resolution=0)
    with pytest.raises(NCAError, match="cut must be one of"):
        AtlasSettings(cut="middle")


def test_the_report_script_refuses_a_folder_of_foreign_files_before_computing(tmp_path):
    from scripts import atlas_report

    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with pytest.raises(NCAError, match=r"holds files this command did not write \(thesis.tex\)"):
        atlas_report.main(["distill:lizard/regenerating", "--out", str(out), "--quiet"])
    assert [p.name for p in out.iterdir()] == ["thesis.tex"] and (out / "thesis.tex").read_text() == "precious"


def test_hex_cells_sit_on_their_lattice_and_have_six_neighbours():
    """The isotropic demo's axial hex grid (nca.model.HEX_NEIGHBOURS): every neighbour at
    distance 1 in cell_positions, and 6 neighbours in the adjacency of Moran's I; the square
    rule (the control) sees 4 of them and puts two at distance sqrt(2) on the array."""
    from analysis.rollouts import cell_positions
    from nca.model import HEX_NEIGHBOURS, ModelConfig

    hexcfg = ModelConfig(perception="laplacian", topology="hex")
    r, c = np.mgrid[:5, :5]
    r, c = r.ravel(), c.ravel()
    centre = 12  # (2, 2)
    xy = cell_positions(r, c, hexcfg)
    for dr, dc in HEX_NEIGHBOURS:
        k = (2 + dr) * 5 + (2 + dc)
        assert np.linalg.norm(xy[k] - xy[centre]) == pytest.approx(1.0)
    assert A.grid_adjacency(r, c, "hex")[centre].sum() == 6
    assert A.grid_adjacency(r, c)[centre].sum() == 4
    sq = cell_positions(r, c, ModelConfig())
    assert np.linalg.norm(sq[6] - sq[centre]) == pytest.approx(np.sqrt(2))  # the (1, 1) neighbour, read as square


def test_hex_body_coordinates_follow_the_planted_axis_and_the_array_does_not():
    from test_analysis_rollouts import _hex_ellipse

    from nca.model import ModelConfig

    hexcfg = ModelConfig(perception="laplacian", topology="hex")
    for axis in (30.0, 120.0):
        alpha = _hex_ellipse(axis)
        rows, cols = np.nonzero(alpha > 0.1)
        ours = A.body_coords(alpha, rows, cols, 0.1, hexcfg)
        array = A.body_coords(alpha, rows, cols, 0.1)
        # a 3:1 ellipse: the along coordinate spreads 3x the across one in the body's frame
        assert ours[:, 0].std() / ours[:, 1].std() == pytest.approx(3.0, rel=0.1)
        assert abs(array[:, 0].std() / array[:, 1].std() - 3.0) > 0.3


def test_transfer_ari_sees_the_same_types_in_a_turned_body_and_none_in_shuffled_cells():
    """Planted: replicate 2 is replicate 1 turned by 90 degrees (np.rot90), as a rotation-
    invariant rule's replicates are. The positional ARI (types compared cell by cell on the
    grid) calls them different; the transfer ARI (replicate 1's types carried to replicate 2
    through its states, kNN) finds the same types. Control: channels shuffled within cells
    (no type structure carried by the states) give a transfer ARI near 0."""
    from analysis.reports import atlas as AR

    rng = np.random.default_rng(0)
    h = 24
    r, c = np.mgrid[:h, :h]
    kinds = ((r < 12).astype(int) + 2 * (c < 8)).ravel()  # 4 regions of distinct states
    centres = rng.normal(0, 3, (4, 6))
    X1 = centres[kinds] + rng.normal(0, 0.3, (h * h, 6))
    img = X1.reshape(h, h, 6)
    X2 = np.rot90(img).reshape(-1, 6)
    rc = np.stack([r.ravel(), c.ravel()], 1)
    lab1, lab2 = kinds, np.rot90(kinds.reshape(h, h)).ravel()
    assert AR._pairs_ari([lab1, lab2], [rc, rc])["mean"] < 0.5  # the pose, not the types
    assert AR._pairs_transfer_ari([X1, X2], [lab1, lab2])["mean"] > 0.95
    shuf = [A.shuffle_channels(X, rng) for X in (X1, X2)]
    assert abs(AR._pairs_transfer_ari(shuf, [lab1, lab2])["mean"]) < 0.1
