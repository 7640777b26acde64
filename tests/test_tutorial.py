"""docs/tutorial.ipynb runs top to bottom (nbclient + ipykernel), so it cannot rot."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"


def test_tutorial_notebook_runs_and_shows_the_viewer():
    nbformat = pytest.importorskip("nbformat", reason="nbformat is in the test extra (pip install -e '.[test]')")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is in the test extra (pip install -e '.[test]')")
    pytest.importorskip("ipykernel", reason="ipykernel is in the test extra (pip install -e '.[test]')")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # the kernel inherits this process's environment (CPU, XLA flags of conftest.py)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "docs")}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    m = re.search(r"intact (\d+), channel 10 knocked out (\d+)", text)
    assert m and int(m.group(1)) > 100  # the lizard grew
    assert int(m.group(2)) > int(m.group(1))  # what the notebook says: channel 10 is a brake
    assert "AnnData object" in text and "moranI" in text  # the atlas section: scanpy and squidpy ran
    assert sum(o.get("output_type") == "display_data" and "image/png" in o.get("data", {}) for o in outputs) >= 4
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert html and html[-1].startswith("<iframe srcdoc=") and "ncaViewer" in html[-1]
