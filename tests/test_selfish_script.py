"""scripts/selfish.py: clean errors, and a seconds-scale run writing report.json/html."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "selfish.py"), *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.mark.parametrize("args, msg", [
    ((), "give --out"),
    (("--out", "OUT", "--variants", "altruists"), "unknown variant"),
    (("--out", "OUT", "--seeds", "1", "1"), "distinct"),
    (("--out", "OUT", "--preset", "huge"), "unknown comparison preset"),
    (("--out", "OUT", "--host", "distill:unicorn/growing", "--variants", "invasion"), "error:"),
])
def test_bad_input_is_one_clear_error(tmp_path, args, msg):
    args = tuple(str(tmp_path / "o") if a == "OUT" else a for a in args)
    r = _run(*args)
    assert r.returncode == 2, r.stderr
    assert msg in r.stderr and "Traceback" not in r.stderr


def test_smoke_run_writes_the_comparison(tmp_path):
    out = tmp_path / "cmp"
    r = _run("--out", str(out), "--preset", "smoke", "--seeds", "0", "1", "--variants", "lineages",
             "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((out / "report.json").read_text())
    assert set(rep["variants"]) == {"lineages"}
    lin = rep["variants"]["lineages"]
    assert set(lin["per_seed"]) == {"0", "1"} and len(lin["summary"]["final_loss"]["values"]) == 2
    shares = lin["per_seed"]["0"]["shares"]
    assert len(shares[0]) == 2 and all(abs(sum(s) - 1) < 1e-5 or sum(s) == 0 for s in shares)
    assert rep["axis_components"]["lineages"]["0"]["status"] in ("ok", "unavailable")
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html and "data:image/gif;base64" in html and "http" not in html
    assert (out / "anim" / "lineages_seed0.gif").stat().st_size > 0
    assert (out / "lineages" / "seed1" / "lineages.msgpack").exists()
