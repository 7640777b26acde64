"""scripts/pca_report.py end to end on a published model (small), and its error messages."""

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from nca.errors import NCAError

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "pca_report.py"


@pytest.fixture(scope="module")
def script():
    return runpy.run_path(str(SCRIPT), run_name="pca_report")


def test_report_on_published_model(script, tmp_path):
    out = tmp_path / "rep"
    argv = ["distill:lizard/persistent", "--out", str(out), "--steps", "60", "--at", "30,60",
            "--every", "15", "--regrow", "15", "--rotations", "90", "--compare", "", "--components", "4",
            "--replicates", "2", "--surrogates", "99", "--bootstrap", "20", "--quiet"]
    assert script["main"](argv) == 0
    rep = json.loads((out / "report.json").read_text())
    assert [s["step"] for s in rep["steps"]] == [30, 60] and rep["replicates"] == 2
    need = {"index", "explained_variance_ratio", "kind", "direction_deg", "association", "linear_r2",
            "radial_association", "angle_to_body_axis_deg"}
    for s in rep["steps"]:
        assert "body_axis_deg" in s and len(s["components"]) == 4
        for c in s["components"]:
            assert need <= set(c) and c["kind"] in ("along-axis", "across-axis", "radial", "none")
            assert 0 <= c["direction_deg"] < 360 and 0 <= c["angle_to_body_axis_deg"] <= 90
            assert len(c["kind_seeds"]) == 2 and c["kind_agreement"] in (0.5, 1.0)
            # every component: null p-values (any direction, radial, along and across the body axis),
            # a fixed-axis gradient label, a direction interval only for a significant direction
            # (issue 23), intervals over replicates
            assert 0 < c["p_value"] <= 1 and 0 < c["radial_p_value"] <= 1 and c["n_surrogates"] == 99
            assert 0 < c["along_p_value"] <= 1 and 0 < c["across_p_value"] <= 1 and c["min_p"] == 0.01
            assert c["axis_gradient"] in ("along", "across", "both", "none") and len(c["axis_gradient_seeds"]) == 2
            if c["kind"] in ("along-axis", "across-axis"):
                lo, hi = c["direction_ci_deg"]
                assert lo <= c["direction_deg"] <= hi
            else:
                assert c["direction_ci_deg"] is None and "no significant direction" in c["direction_ci_reason"]
            assert c["association_ci"]["n"] == 2 and c["association_ci"]["lo"] <= c["association_ci"]["mean"]
            assert c["kind_threshold"] in ("along-axis", "across-axis", "radial", "none")
            if c["kind"] == "none":
                assert c["kind_reason"]
    assert len(rep["pca"]["explained_variance_ratio"]) == 4
    assert rep["emergence"]["growth"]["steps"] == [15, 30, 45, 60]
    assert rep["emergence"]["regrowth"]["steps"][0] == 60 and rep["emergence"]["damage"]["fraction_of_body_erased"] >= 0.2
    assert rep["rotation"]["angles_deg"] == [90.0]
    assert abs(rep["rotation"]["body_axis_rotation_deg"][0] - 90) < 10 or abs(rep["rotation"]["body_axis_rotation_deg"][0] + 90) < 10
    assert rep["comparison"][0]["loading_angles_meaningful"] is True  # the second seed
    html = (out / "index.html").read_text()
    assert html.count("data:image/png;base64,") == len(rep["figures"]) >= 5
    # the page links the model's live viewer, exported beside it with the weights inside
    assert "href='viewer.html'" in html
    page = (out / "viewer.html").read_text()
    assert rep["model"] in page and "<script" in page and "http" not in page.split("<script", 1)[1][:200]
    # ... and shows the report's own pooled PCA (not a fit of its own)
    data = json.loads(page.split('<script id="nca-payload" type="application/json">', 1)[1].split("</script>", 1)[0])
    assert data["pca"]["steps"] == [30, 60] and data["pca"]["rollouts"] == 2
    assert data["pca"]["explained_variance_ratio"] == rep["pca"]["explained_variance_ratio"]
    for f in rep["figures"]:
        assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_on_pca_gets_the_reports_own_pca_and_its_cells():
    """run(on_pca=...) hands over the pooled PCA the report measures (dissect.py's movie
    shows it), with the features of exactly the cells it was fitted on."""
    import numpy as np

    from analysis.reports import pca as pca_report

    got = []
    s = pca_report.PCAReportSettings(model="distill:lizard/persistent", at=(30,), replicates=1, every=30, regrow=0,
                                     rotations=(), compare=(), components=2, surrogates=99, bootstrap=10)
    rep = pca_report.run(s, on_pca=lambda pca, feats: got.append((pca, feats))).report
    (pca, feats), = got
    np.testing.assert_allclose(pca.explained_variance_ratio, rep["pca"]["explained_variance_ratio"])
    assert feats.shape == (rep["steps"][0]["n_alive"], 12)


@pytest.mark.parametrize("argv, message", [
    (["distill:lizard/nope", "--out", "x"], "unknown published model"),
    (["distill:lizard/persistent", "--out", "x", "--steps", "50", "--at", "80"], "outside the rollout"),
    (["distill:lizard/persistent", "--out", "x", "--at", "0"], "must be >= 1"),
    (["distill:lizard/persistent", "--out", "x", "--min-agreement", "0"], "--min-agreement must be in"),
    (["distill:lizard/persistent", "--out", "x", "--surrogates", "99"], "too few"),
    (["distill:lizard/persistent", "--out", "x", "--components", "13", "--surrogates", "299"], "only 12 dimensions"),
])
def test_bad_input_messages(script, argv, message, tmp_path):
    argv = [a if a != "x" else str(tmp_path / "x") for a in argv]
    with pytest.raises(NCAError, match=message):
        script["main"](argv)
    assert not (tmp_path / "x").exists()


def test_malformed_list_is_one_line_exit_2(script, tmp_path, capsys):
    # in-process (argparse exits the same way); a real process's one line is
    # test_cli_prints_one_line_error_without_traceback's
    for bad in (["--at", "10,x"], ["--replicates", "0"]):
        with pytest.raises(SystemExit) as e:
            script["main"](["distill:lizard/persistent", "--out", str(tmp_path / "x")] + bad)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith("error:") and repr(bad[1].split(",")[-1]) in err
        assert len(err.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_no_alive_cells_at_step_is_a_clear_message(script, tmp_path):
    # at step 1 the body is the seed's neighbourhood: too few cells to analyse
    with pytest.raises(NCAError, match="alive cells at step 1"):
        script["main"](["distill:lizard/persistent", "--out", str(tmp_path / "x"), "--at", "1,2", "--quiet"])


def test_out_that_is_a_file_stops_before_computing(script, tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(NCAError, match="not a folder"):
        script["main"](["distill:lizard/persistent", "--out", str(f)])


def test_help_shows_out_as_required_and_defaults(script, capsys):
    with pytest.raises(SystemExit) as e:
        script["main"](["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "required arguments:" in out and "--out PATH" in out
    assert "(default: 5)" in out and "--quiet" in out and "--seeds" not in out


def test_cli_prints_one_line_error_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "distill:nothing/growing", "--out", str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert r.returncode == 2
    assert r.stderr.startswith("error: unknown published model") and "Traceback" not in r.stderr


def test_mean_interval_is_the_student_t_interval_and_covers_95_percent():
    """mean_interval's half-width is scipy.stats.t's, bit for bit (it calls the special function
    t.ppf evaluates, to skip importing scipy.stats), and the interval covers a planted mean in
    95 % of 4000 samples of 5 (binomial sd 0.35 %)."""
    import numpy as np
    from scipy import stats

    from analysis.reports.pca import mean_interval

    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(4000):
        v = rng.normal(1.0, 2.0, 5)
        ci = mean_interval(v)
        half = float(stats.t.ppf(0.975, 4) * v.std(ddof=1) / np.sqrt(5))
        assert ci["hi"] - ci["mean"] == pytest.approx(half, rel=1e-12) and ci["n"] == 5
        assert ci["mean"] + half == ci["hi"]
        hits += ci["lo"] <= 1.0 <= ci["hi"]
    assert abs(hits / 4000 - 0.95) < 0.012
    assert mean_interval([np.nan, 2.0])["lo"] is None and mean_interval([])["n"] == 0


def test_summary_lines_list_a_steps_components_by_their_share_of_that_step():
    """Issue 25: the pooled PCA's order is not the order of a single step's shares; the
    console printed "PC3 7.2 % / PC4 7.5 %". Planted: PC4 has the larger share at step 200."""
    from analysis.reports.pca import PCAReportResult, summary_lines

    def comp(i, share):
        return {"index": i, "explained_variance_ratio": share, "kind": "none", "association": 0.1,
                "radial_association": 0.0, "p_value": 0.5, "radial_p_value": 0.5, "kind_agreement": 1.0}

    rep = {"model": "m", "replicates": 2, "pooled": True,
           "steps": [{"step": 200, "body_axis_deg": 0.0,
                      "components": [comp(0, 0.40), comp(1, 0.20), comp(2, 0.072), comp(3, 0.075)]}]}
    lines = summary_lines(PCAReportResult(None, rep))
    shares = [float(line.split("%")[0].split()[-1]) for line in lines[1:]]
    assert shares == sorted(shares, reverse=True) == [40.0, 20.0, 7.5, 7.2]
    assert [line.split()[0] for line in lines[1:]] == ["PC1", "PC2", "PC4", "PC3"]  # the report's names kept
    assert "share of step 200" in lines[0]


def test_a_radial_kind_is_printed_with_the_radial_tests_missing_certification():
    """Round 3 of the null (docs/validation/spatial_null.md): the radial test exceeds the 8 %
    bound on some smooth-field families, so a radial kind is never printed without saying so;
    a report with no radial kind does not carry the note (the planted negative)."""
    from analysis.reports import pca as R

    def result(kind):
        c = {"index": 0, "explained_variance_ratio": 0.4, "kind": kind, "association": 0.1,
             "radial_association": -0.7, "p_value": 0.2, "radial_p_value": 0.001, "kind_agreement": 1.0}
        rep = {"model": "m", "replicates": 5, "steps": [{"step": 96, "body_axis_deg": 3.0, "components": [c]}]}
        return R.PCAReportResult(settings=None, report=rep)

    assert any("radial test NOT certified" in line for line in R.summary_lines(result("radial")))
    assert not any("NOT certified" in line for line in R.summary_lines(result("none")))
    assert "NOT certified" in R._conventions()["calibration"]


def test_a_model_folder_whose_name_is_not_its_path_gets_its_report_and_viewer(script, tmp_path):
    # A params-only folder keeps the name it was saved with (e.g. an import's own name); the
    # report's writer reloaded the model by that name for the viewer and failed at the end.
    import dataclasses

    import nca

    folder = tmp_path / "folder"
    nca.save_model(dataclasses.replace(nca.load_model("distill:lizard/persistent"), name="my lizard, imported"),
                   folder)
    out = tmp_path / "rep"
    argv = [str(folder), "--out", str(out), "--steps", "30", "--at", "30", "--every", "15", "--regrow", "0",
            "--rotations", "", "--compare", "", "--components", "2", "--replicates", "1", "--surrogates", "59",
            "--bootstrap", "10", "--quiet"]
    assert script["main"](argv) == 0
    assert json.loads((out / "report.json").read_text())["model"] == "my lizard, imported"
    assert (out / "viewer.html").is_file() and "href='viewer.html'" in (out / "index.html").read_text()
