"""PC-map panels for animations: colours follow the PCA scores; dead cells stay background."""

import numpy as np

import nca
from analysis.representation.panels import PCPanel, fit_steps, register
from analysis.representation.pca import fit_cell_pca, pc_maps
from nca.render import PANEL_KINDS, apply_colormap, make_panels, parse_panels


def planted_state(rng, size=24):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    body = (xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 3) ** 2
    s = np.zeros((size, size, 16), np.float32)
    s[..., 3] = body
    s[..., 4] = (xx - size / 2) * body  # a strong left-right gradient: PC1
    s[..., 5:] = rng.normal(0, 0.05, (size, size, 11)) * body[..., None]
    return s, body


def test_pc_panel_colours_are_the_pca_scores_and_dead_cells_are_white():
    s, body = planted_state(np.random.default_rng(0))
    pca = fit_cell_pca(s[None, ..., 4:], body[None], n_components=3)
    panel = PCPanel(pca, 0, vmax=8.0)
    rgb = panel(s)
    np.testing.assert_array_equal(rgb[~body], 1.0)
    expected = apply_colormap(pc_maps(pca, s[..., 4:], body)[..., 0][body], -8.0, 8.0)
    np.testing.assert_allclose(rgb[body], expected)
    # the planted gradient runs left to right: the two flanks get opposite ends of the map
    row = body.shape[0] // 2
    left, right = rgb[row, 5], rgb[row, -6]
    assert (left[2] > left[0]) != (right[2] > right[0])  # one bluish, one reddish
    assert panel.title.startswith("PC1 (") and panel.legend.hi == 8.0


def test_registered_pc_panels_fit_the_animated_model():
    register()
    assert {"pc1", "pc6"} <= set(PANEL_KINDS)
    items = parse_panels("rgba,pc1,pc2", 16)
    model = nca.load_model("distill:lizard/persistent")
    ctx = {"models": [model], "size": 48, "steps": 80, "seed": 0}
    rgba, pc1, pc2 = make_panels(items, "white", {}, ctx)
    assert pc1.pca is pc2.pca  # one fit shared by the animation's panels
    assert pc1.pca.explained_variance_ratio[0] >= pc2.pca.explained_variance_ratio[0]
    assert fit_steps(80) == [20, 40, 60, 80] and fit_steps(1000)[-1] == 200


def test_a_given_pca_is_the_one_the_exported_panels_show(tmp_path, monkeypatch):
    """export(panel_context=fitted(pca, features)): the pc panels show that PCA (dissect.py
    passes its report's) and fit none of their own."""
    import json

    import analysis.representation.panels as panels
    from nca.animate import Animation, export

    register()
    s, body = planted_state(np.random.default_rng(1), size=72)
    pca = fit_cell_pca(s[None, ..., 4:], body[None], n_components=6)

    def no_fit(*a, **k):
        raise AssertionError("the panels fitted their own PCA")

    monkeypatch.setattr(panels, "fit_panel_pca", no_fit)
    meta = export(Animation(models=("distill:lizard/persistent",), steps=4, every=2, scale=1, panels=("pc1", "pc2")),
                  tmp_path / "a.gif", panel_context=panels.fitted(pca, s[body][:, 4:]))
    titles = [t["panel"] for t in meta["output"]["tiles"]]
    assert titles == [f"PC{j + 1} ({pca.explained_variance_ratio[j]:.0%})" for j in (0, 1)]
    assert meta["panel_context"] == ["pc_fit"]
    assert json.loads((tmp_path / "a.gif.json").read_text())["panel_context"] == ["pc_fit"]
    vmax = panels.fitted(pca, s[body][:, 4:])["pc_fit"][1]
    np.testing.assert_allclose(vmax, np.percentile(np.abs(pca.transform(s[body][:, 4:])), 99, axis=0))
