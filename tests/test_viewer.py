"""The interactive viewer (issue #17): the export, and the page itself in headless Chromium.

Browser tests run the exported page in Debian's chromium through Selenium, with WebGL and
WebGPU switched off (``--disable-3d-apis``): the page needs neither. They skip, saying why,
only when chromium/chromedriver/selenium are missing (.ci/run installs them). Screenshots
of every view go to ``$NCA_VIEWER_SHOTS`` if set, else to the test's temporary folder.
"""

import base64
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import nca
from analysis import viewer as V
from analysis.viewer import browser as vb
from analysis.causal.interventions import ablate, embed_directions
from nca.errors import NCAError
from nca.model import ModelConfig, init_params

ROOT = Path(__file__).resolve().parents[1]
MODEL = "distill:lizard/regenerating"
SIZE = 72
STEPS = 50  # the numerics horizon
TOL = 1e-4

# Named PRNG streams of these tests' fire masks.
ROTATED_STREAM, KNOCKOUT_STREAM = 2, 3


@pytest.fixture(scope="module")
def model():
    return nca.load_model(MODEL)


@pytest.fixture(scope="module")
def page(model, tmp_path_factory):
    """The lizard's page (paused, so tests drive every step), and its payload."""
    data = V.payload(model, V.ViewerSettings(steps=200, autoplay=False))
    path = tmp_path_factory.mktemp("viewer") / "lizard.html"
    path.write_text(V.render_html(data))
    return path, data


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    d = Path(os.environ.get("NCA_VIEWER_SHOTS") or tmp_path_factory.mktemp("shots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def browser():
    _, _, why = vb.find_browser()
    if why:
        pytest.skip(why)
    drv = vb.start_browser(extra_args=("--disable-3d-apis",))
    yield drv
    drv.quit()


def fresh(drv, path):
    vb.open_page(drv, path)
    assert drv.execute_script("return document.createElement('canvas').getContext('webgl2')") is None
    assert vb.js_errors(drv) == []


# ------------------------------------------------------------------------------ export


def test_export_is_one_small_self_contained_page_with_the_exact_weights(model, page):
    path, data = page
    text = path.read_text()
    assert path.stat().st_size < 2_000_000  # the budget for the article's model
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # nothing fetched
    assert "</script" not in json.dumps(data).replace("</", "<\\/")
    m = data["model"]
    for k, v in model.params.items():
        got = np.frombuffer(base64.b64decode(m[k]), "<f4").reshape(np.shape(v))
        np.testing.assert_array_equal(got, np.asarray(v, np.float32))
    pca = data["pca"]
    comps = np.asarray(pca["components"])
    assert comps.shape == (6, 12)
    np.testing.assert_allclose(comps @ comps.T, np.eye(6), atol=1e-6)
    assert 0 < sum(pca["explained_variance_ratio"]) <= 1
    assert len(data["channel_means"]) == 16 and data["n_alive_cells"] > 1000


def test_nonstandard_architecture_exports_and_oversized_one_is_refused(tmp_path):
    cfg = ModelConfig(channels=8, hidden=32)
    small = nca.LoadedModel("tiny8", cfg, init_params(jax.random.key(0), cfg), None, grid_size=16)
    data = V.payload(small, V.ViewerSettings(steps=4, components=3))
    assert data["model"]["channels"] == 8 and data["model"]["hidden"] == 32
    # the do-nothing start keeps only the seed cell alive: too few cells for a PCA, said so
    assert data["pca"] is None and "alive cells" in data["pca_note"]
    big = ModelConfig(channels=80, hidden=32)
    huge = nca.LoadedModel("c80", big, init_params(jax.random.key(0), big), None, grid_size=16)
    with pytest.raises(NCAError, match="4..64 channels"):
        V.payload(huge, V.ViewerSettings(steps=4))
    wrong = nca.LoadedModel("bad", cfg, init_params(jax.random.key(0), ModelConfig()), None, grid_size=16)
    with pytest.raises(NCAError, match="do not match its architecture"):
        V.payload(wrong, V.ViewerSettings(steps=4))
    # A variant with the article's parameter shapes (circular padding, no alive masking) would
    # run as the article's CA in the page, silently wrong: refused, naming what differs.
    for variant, named in ((ModelConfig(padding="circular"), "padding='circular'"), (ModelConfig(life="none"), "life='none'")):
        same_shapes = nca.LoadedModel("variant", variant, init_params(jax.random.key(0), variant), None, grid_size=16)
        with pytest.raises(NCAError, match=f"the viewer runs the article's architecture only.*{named}"):
            V.payload(same_shapes, V.ViewerSettings(steps=4))


def test_notebook_view_is_an_iframe_holding_the_whole_page(page):
    path, data = page
    v = V.Viewer(V.render_html(data))
    html = v._repr_html_()
    assert html.startswith("<iframe srcdoc=") and 'sandbox="allow-scripts"' in html
    assert "<script" not in html  # escaped inside srcdoc, so the notebook runs nothing itself
    assert "&lt;script" in html


def test_script_refuses_an_unwritable_out_before_computing_and_bad_models(tmp_path):
    (tmp_path / "f").write_text("")
    p = subprocess.run([sys.executable, "scripts/viewer.py", MODEL, "--out", str(tmp_path / "f" / "v.html")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and "Traceback" not in p.stderr, p.stderr
    spec = importlib.util.spec_from_file_location("viewer_script", ROOT / "scripts" / "viewer.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)  # (in-process: one interpreter start per test is enough)
    with pytest.raises(NCAError, match="unknown published model"):
        script.main(["distill:unicorn/growing", "--out", str(tmp_path / "v.html")])
    assert not (tmp_path / "v.html").exists()


# ------------------------------------------------------------------------------ browser


def python_run(model, key, hooks=None):
    """50 steps of nca.grow (a jitted nca.model.rollout) from the seed: states [T, H, W, C]
    and fire masks [T, H, W]."""
    _, tr = nca.grow(model, STEPS, key, size=SIZE, record=("state", "fire"), hooks=hooks)
    return np.asarray(tr.states), np.asarray(tr.fire)[..., 0] > 0.5


def test_browser_states_equal_python_rollouts_with_the_same_fire_masks(browser, model, page):
    path, data = page
    fresh(browser, path)
    # published model, then the same page rotated by 45 degrees (the article's experiment)
    # key(4): a run where a fired cell that is not alive itself lifts its neighbour's
    # post-step alive mask (an engine that skipped such cells diverged by 0.54 at step 41)
    for angle, key in ((0.0, jax.random.key(4)), (45.0, jax.random.fold_in(jax.random.key(0), ROTATED_STREAM))):
        m = model.rotated(angle) if angle else model
        states, fire = python_run(m, key)
        browser.execute_script("ncaViewer.setAngle(arguments[0]); ncaViewer.reset()", angle)
        got = vb.run(browser, STEPS, fire, every=1)
        err = np.abs(got - states).max()
        assert err < TOL, (angle, err)
        assert (states[-1, ..., 3] > 0.1).sum() > 300  # it grew: the comparison is not of empty grids
        if angle:  # control: a page that ignored the rotation would be caught
            unrotated, _ = python_run(model, key)
            assert np.abs(unrotated - states).max() > 0.1
    # a live knockout (mean ablation of PC 1, as the page's checkbox sets it) is
    # analysis.causal.interventions.ablate at the "state" point
    browser.execute_script("ncaViewer.setAngle(0); ncaViewer.reset()")
    choose(browser, "komode", "mean")
    browser.find_element("id", "ko-pc0").click()
    ko = browser.execute_script("return ncaViewer.info().knockouts")
    d = embed_directions(np.asarray(data["pca"]["components"])[:1], 4, 16)
    np.testing.assert_allclose(ko[0]["dir"], d[0], atol=1e-6)
    value = float(np.asarray(data["channel_means"]) @ d[0])
    assert abs(ko[0]["value"] - value) < 1e-6  # (embed_directions is float32)
    hook = ablate(d, "mean", [value])
    states, fire = python_run(model, jax.random.fold_in(jax.random.key(0), KNOCKOUT_STREAM), hooks={"state": hook})
    got = vb.run(browser, STEPS, fire, every=1)
    want = np.asarray(hook(jax.numpy.asarray(states), jax.numpy.asarray(0)))  # re-applied after each step
    assert np.abs(got - want).max() < TOL
    assert np.abs(want - states).max() > 1e-2  # the knockout did change the run


def choose(drv, select_id, value):
    """Pick an option of a <select> as a user does (fires its change event)."""
    from selenium.webdriver.support.ui import Select

    Select(drv.find_element("id", select_id)).select_by_value(value)


def test_browser_runs_a_nonstandard_architecture_exactly(browser, tmp_path):
    # 8 channels, 32 hidden units, random second layer (so it moves), 16x16 grid
    cfg = ModelConfig(channels=8, hidden=32)
    params = init_params(jax.random.key(1), cfg)
    params["w2"] = 0.05 * jax.random.normal(jax.random.key(2), (32, 8))
    small = nca.LoadedModel("tiny8", cfg, params, None, grid_size=16)
    path = tmp_path / "tiny.html"
    path.write_text(V.render_html(V.payload(small, V.ViewerSettings(steps=4, components=3, autoplay=False))))
    fresh(browser, path)
    assert browser.execute_script("return ncaViewer.info().C") == 8
    _, tr = nca.grow(small, 20, jax.random.key(3), record=("state", "fire"))
    states = np.asarray(tr.states)
    got = vb.run(browser, 20, np.asarray(tr.fire)[..., 0] > 0.5, every=1)
    assert np.abs(states).max() < 10  # values of the lizard's order, so the absolute tolerance applies
    assert np.abs(got - states).max() < TOL and np.abs(states[-1] - states[0]).max() > 0.1
    # no PCA for this model: the page says why instead of offering empty PC views
    assert "no PCA views" in browser.find_element("id", "notice").text
    assert not browser.execute_script("return [...document.getElementById('view').options].some(o => o.value.startsWith('pc'))")


def canvas_colours(drv) -> int:
    """Distinct colours on the board (a blank canvas has 1)."""
    return drv.execute_script(
        "const c=document.getElementById('board');const d=c.getContext('2d').getImageData(0,0,c.width,c.height).data;"
        "const s=new Set();for(let i=0;i<d.length;i+=4)s.add(d[i]<<16|d[i+1]<<8|d[i+2]);return s.size;")


def test_erase_by_click_leaves_an_empty_disc_that_regrows_and_knockouts_hold(browser, page, shots):
    from selenium.webdriver.common.action_chains import ActionChains

    path, data = page
    fresh(browser, path)
    vb.run(browser, 300)
    before = vb.get_state(browser)
    alive_before = before[..., 3] > 0.1
    board = browser.find_element("id", "board")
    # click at the body's centroid (erase tool, radius 8 cells)
    rows, cols = np.nonzero(alive_before)
    r0, c0 = int(rows.mean()), int(cols.mean())
    w = board.size["width"] / SIZE
    ActionChains(browser).move_to_element_with_offset(
        board, int((c0 + 0.5) * w - board.size["width"] / 2), int((r0 + 0.5) * w - board.size["height"] / 2)
    ).click().perform()
    browser.save_screenshot(str(shots / "erased.png"))
    after = vb.get_state(browser)
    brush = browser.execute_script("return ncaViewer.info().lastBrush")
    assert brush["tool"] == "erase" and abs(brush["r"] - r0) < 1 and abs(brush["c"] - c0) < 1, brush
    rr, cc = np.mgrid[:SIZE, :SIZE]
    disc = (rr - brush["r"]) ** 2 + (cc - brush["c"]) ** 2 <= brush["radius"] ** 2
    assert np.all(after[disc] == 0)  # the erased disc is empty...
    assert np.array_equal(after[~disc], before[~disc])  # ...and nothing else changed
    lost = disc & alive_before
    assert lost.sum() > 50
    vb.run(browser, 150)
    regrown = vb.get_state(browser)
    frac = (regrown[..., 3] > 0.1)[lost].mean()
    assert frac > 0.9, frac  # the regenerating lizard fills the wound again
    browser.save_screenshot(str(shots / "regrown.png"))

    # a drag erases along its path: both ends and the middle of a 16-cell stroke are empty
    half = board.size["width"] / 2
    ActionChains(browser).move_to_element_with_offset(board, int((c0 - 7.5) * w - half), int((r0 + 0.5) * w - half)) \
        .click_and_hold().move_by_offset(int(8 * w), 0).move_by_offset(int(8 * w), 0).release().perform()
    s = vb.get_state(browser)
    assert np.all(s[r0, c0 - 8:c0 + 9] == 0) and regrown[r0, c0 - 8:c0 + 9, 3].max() > 0.1

    # views: each draws something (never a blank canvas); screenshots for a human to look at
    for v in ["rgba_white", "rgba_checker", "ch4", "pc0", "pc1", "update", "fire", "alive"]:
        choose(browser, "view", v)
        vb.run(browser, 1)
        assert browser.execute_script("return ncaViewer.info().view") == v
        assert canvas_colours(browser) >= (2 if v in ("fire", "alive") else 3), v  # masks: black and white
        board.screenshot(str(shots / f"view_{v}.png"))

    # knock out hidden channel 6 by its checkbox: zero, then mean ablation, while running
    browser.find_element("id", "ko-ch6").click()
    vb.run(browser, 20)
    s = vb.get_state(browser)
    assert np.all(s[..., 6] == 0) and np.abs(s[..., 7]).max() > 0.01
    choose(browser, "komode", "mean")
    vb.run(browser, 20)
    s = vb.get_state(browser)
    np.testing.assert_allclose(s[..., 6], data["channel_means"][6], atol=1e-6)
    browser.save_screenshot(str(shots / "knockout_ch6_mean.png"))

    # the seed brush: a click on an empty corner plants the article's seed cell there
    # (channels 3.. = 1), with the knocked-out channel 6 still at its mean
    browser.find_element("css selector", "input[name=tool][value=seed]").click()
    assert s[5, 4, 3] == 0  # an empty corner (every cell carries the ablated channel 6)
    ActionChains(browser).move_to_element_with_offset(
        board, int(4.5 * w - board.size["width"] / 2), int(5.5 * w - board.size["height"] / 2)).click().perform()
    cell = vb.get_state(browser)[5, 4]
    assert np.all(cell[[3, 4, 5, *range(7, 16)]] == 1) and np.all(cell[:3] == 0)
    assert abs(cell[6] - data["channel_means"][6]) < 1e-6
    assert vb.js_errors(browser) == []


def test_notebook_iframe_runs_the_page(browser, page, tmp_path):
    path, data = page
    wrapper = tmp_path / "notebook.html"
    wrapper.write_text("<html><body>" + V.Viewer(V.render_html(data))._repr_html_() + "</body></html>")
    browser.get(wrapper.resolve().as_uri())
    browser.switch_to.frame(browser.find_element("tag name", "iframe"))
    try:
        assert browser.execute_script("return ncaViewer.info().firstFrameMs") is not None
        assert canvas_colours(browser) >= 2
        vb.run(browser, 5)
        assert browser.execute_script("return ncaViewer.info().t") == 5
    finally:
        browser.switch_to.default_content()


def test_first_frame_speed_rotation_and_seed_controls(browser, page):
    path, _ = page
    fresh(browser, path)
    info = browser.execute_script("return ncaViewer.info()")
    assert info["t"] == 0 and info["firstFrameMs"] is not None and canvas_colours(browser) >= 2
    browser.find_element("id", "play").click()
    time.sleep(1.5)
    info = browser.execute_script("return ncaViewer.info()")
    assert info["playing"] and info["t"] > 5 and info["sps"] > 0
    assert float(browser.find_element("id", "sps").text) > 0
    # the speed slider: 10 steps/s runs about 10 steps a second, never more
    browser.execute_script("const s=document.getElementById('speed'); s.value=10; s.dispatchEvent(new Event('input'))")
    assert browser.find_element("id", "speedv").text == "10 steps/s"
    t0, c0 = time.monotonic(), browser.execute_script("return ncaViewer.info().t")
    time.sleep(2.0)
    n = browser.execute_script("return ncaViewer.info().t") - c0
    assert 5 <= n <= 10 * (time.monotonic() - t0) + 2, n
    # the rotation slider sets the engine's perception angle; the seed box resets the run
    browser.execute_script("const s=document.getElementById('angle'); s.value=90; s.dispatchEvent(new Event('input'))")
    assert browser.execute_script("return ncaViewer.engine.angle") == 90
    assert browser.find_element("id", "anglev").text == "90°"
    browser.find_element("id", "play").click()
    seed = browser.find_element("id", "seed")
    seed.clear()
    seed.send_keys("7\n")
    browser.execute_script("document.getElementById('seed').dispatchEvent(new Event('change'))")
    assert browser.execute_script("return [ncaViewer.engine.seed, ncaViewer.info().t, ncaViewer.info().playing]") == [7, 0, False]
    # reset replays the same run (the mask of step t depends on (seed, t) only); another seed differs
    browser.execute_script("ncaViewer.setAngle(0)")
    runs = []
    for s in (7, 7, 0):
        browser.execute_script("document.getElementById('seed').value = arguments[0]; ncaViewer.reset()", s)
        vb.run(browser, 30)
        runs.append(vb.get_state(browser))
    assert np.array_equal(runs[0], runs[1]) and np.abs(runs[0] - runs[2]).max() > 0.1


def _chromium() -> str | None:
    import shutil

    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def _headless_screenshot(url: str, shot: Path, timeout: float) -> bool:
    """docs/viewer.md's screenshot command; True if chromium finished within ``timeout`` s
    (its whole process group is ended otherwise)."""
    import signal

    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--window-size=800,900",
           "--virtual-time-budget=5000", f"--screenshot={shot}", url]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _green_pixels(shot: Path) -> int:
    from PIL import Image

    rgb = np.asarray(Image.open(shot).convert("RGB"), np.int32)
    return int(((rgb[..., 1] > rgb[..., 0] + 40) & (rgb[..., 1] > rgb[..., 2] + 40)).sum())


def test_a_headless_screenshot_finishes_and_steps_in_the_url_choose_the_state(model, page, tmp_path):
    """Issue 25: `chromium --headless --screenshot --virtual-time-budget` hung on a running
    page: at max speed a frame stepped until the clock passed 30 ms, and under virtual time
    the clock stands still inside a frame. Now a frame also stops after 200 steps, and
    ?steps=N shows the state after N steps, paused. Both parts failed before (the running
    page timed out; ?steps was ignored: the paused page showed the seed, no lizard)."""
    if _chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    path, _ = page  # paused
    shot = tmp_path / "lizard.png"
    assert _headless_screenshot(path.as_uri() + "?steps=200", shot, timeout=120)
    assert _green_pixels(shot) > 2000  # the grown lizard (about 10k px at 800x900)
    assert _headless_screenshot(path.as_uri() + "?steps=0", tmp_path / "seed.png", timeout=120)
    assert _green_pixels(tmp_path / "seed.png") < 100  # control: the seed, nothing grown
    running = tmp_path / "running.html"  # the default page: it plays at max speed on opening
    running.write_text(V.render_html(V.payload(model, V.ViewerSettings(steps=50))))
    assert _headless_screenshot(running.as_uri(), tmp_path / "running.png", timeout=120)
