import sys
from pathlib import Path

# Run against this checkout (not an installed copy) and make scripts/ importable.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
