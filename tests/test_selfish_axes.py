"""The selfish comparison's body-axis summary is the PCA report's analysis, wired for real."""

import numpy as np

from analysis.reports.selfish import axis_components


def test_axis_summary_finds_a_planted_radial_component():
    rng = np.random.default_rng(0)
    size = 32
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    r = np.hypot(xx - size / 2, yy - size / 2)
    states = []
    for t in range(8):
        body = r < 6 + t  # a growing disc
        s = np.zeros((size, size, 16), np.float32)
        s[..., 3] = body
        s[..., 4] = (2.0 - 0.3 * r) * body  # high in the core: the dominant component
        s[..., 5:] = rng.normal(0, 0.02, (size, size, 11)) * body[..., None]
        states.append(s)
    out = axis_components(np.stack(states), np.arange(1, 9) * 10)
    assert out["status"] == "ok" and out["step"] == 80  # steps 50..80 pooled
    pc1 = out["components"][0]
    assert pc1["kind"] == "radial" and pc1["explained_variance_ratio"] > 0.9
    assert abs(pc1["radial_association"]) > 0.9


def test_axis_summary_reports_too_little_body_instead_of_failing():
    states = np.zeros((4, 16, 16, 16), np.float32)
    states[:, 8, 8, 3] = 1.0  # one live cell
    out = axis_components(states, np.arange(1, 5))
    assert out["status"] == "unavailable" and "alive cells" in out["reason"]
