"""Driving an exported viewer page in headless Chromium (tests and bench/browser.py).

Uses Selenium with the system's ``chromium`` and ``chromedriver`` (Debian packages
``chromium`` and ``chromium-driver``; nothing is downloaded). ``find_browser`` says why a
browser cannot be used, so tests can skip with that reason.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import numpy as np

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = ("chromedriver",)


def find_browser() -> tuple[str | None, str | None, str]:
    """(chromium path, chromedriver path, reason) -- reason is "" when both are found."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None, None, "selenium is not installed (pip install -e '.[test]')"
    b = next((shutil.which(n) for n in CHROMIUM if shutil.which(n)), None)
    d = next((shutil.which(n) for n in DRIVER if shutil.which(n)), None)
    if not b or not d:
        return b, d, "chromium and chromedriver are not installed (apt-get install chromium chromium-driver; .ci/run does)"
    return b, d, ""


def start_browser(width: int = 1100, height: int = 900, extra_args: tuple[str, ...] = ()):
    """A headless Chromium WebDriver (software rendering, no GPU). extra_args: more
    command-line switches (e.g. ``--disable-3d-apis``: no WebGL/WebGPU)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver, why = find_browser()
    if why:
        raise RuntimeError(why)
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              f"--window-size={width},{height}", "--disable-extensions", "--no-first-run",
              "--disable-background-timer-throttling", "--disable-renderer-backgrounding", *extra_args):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def open_page(drv, path: str | Path) -> None:
    drv.get(Path(path).resolve().as_uri())
    if not drv.execute_script("return window.ncaViewer !== undefined"):
        raise RuntimeError(f"the viewer did not start: {js_errors(drv)}")


def f32(b64: str, shape) -> np.ndarray:
    """A base64 float32 buffer from the page -> array of ``shape``."""
    return np.frombuffer(base64.b64decode(b64), "<f4").reshape(shape).copy()


def b64(a: np.ndarray, dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(np.asarray(a, dtype)).tobytes()).decode("ascii")


def get_state(drv) -> np.ndarray:
    """The page's state [H, W, C]."""
    info = drv.execute_script("return window.ncaViewer.info()")
    return f32(drv.execute_script("return window.ncaViewer.getState()"), (info["H"], info["W"], info["C"]))


def set_state(drv, x: np.ndarray) -> None:
    drv.execute_script("window.ncaViewer.setState(arguments[0])", b64(x, "<f4"))


def run(drv, n: int, masks: np.ndarray | None = None, every: int = 0) -> np.ndarray | None:
    """Run n steps in the page (masks: optional bool [n, H, W] fire masks from Python).
    Returns the states after every ``every``-th step, [n // every, H, W, C], if every > 0."""
    info = drv.execute_script("return window.ncaViewer.info()")
    m = None if masks is None else b64(np.asarray(masks).reshape(n, info["H"], info["W"]), np.uint8)
    out = drv.execute_script("return window.ncaViewer.run(arguments[0], arguments[1], arguments[2])", n, m, every)
    if not every:
        return None
    return f32(out, (n // every, info["H"], info["W"], info["C"]))


def js_errors(drv) -> list[str]:
    """SEVERE entries of the page's console (uncaught exceptions)."""
    try:
        return [e["message"] for e in drv.get_log("browser") if e.get("level") == "SEVERE"]
    except Exception:  # noqa: BLE001 -- not every driver exposes the log
        return []
