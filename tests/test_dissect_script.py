"""scripts/dissect.py, the README's main job: arguments and a clean error (the full run takes
about a minute and is covered piecewise by tests/test_pca_report.py and tests/test_animate.py)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dissect_unknown_model_is_one_clean_line(tmp_path):
    p = subprocess.run([sys.executable, "scripts/dissect.py", "distill:unicorn/growing", "--out", str(tmp_path / "r")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.startswith("error: unknown published model")
    assert not (tmp_path / "r").exists()  # nothing written
