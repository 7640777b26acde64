"""Run the peer implementations in ``../shared/peers`` as subprocesses and read their JSON lines.

Each peer script prints one JSON object per line; a timing line has ``name`` and
``ms_min``. Peers live in their own virtual environments (never a dependency of this
project): give the interpreter with ``--torch-python`` / ``--cax-python`` or the
environment variables ``NCA_BENCH_TORCH_PYTHON`` / ``NCA_BENCH_CAX_PYTHON``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PEERS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "peers"


@dataclass(frozen=True)
class Peer:
    label: str  # shown in the table
    script: str  # file in the peers directory
    args: tuple[str, ...]  # command-line arguments
    train: str  # name of its canonical training-step line
    rollout_1000: str | None  # name of its 1 x 1000-step rollout line
    batch64: str | None  # name of its 64 x 100-step rollout line


PEERS = {
    "torch": Peer("PyTorch (1x1 conv)", "bench_torch_nca.py",
                  ("--styles", "conv1x1", "--modes", "train,infer"),
                  "torch_conv1x1_train_B8_N96", "torch_conv1x1_fwd_B1_N1000", "torch_conv1x1_fwd_B64_N100"),
    "jax": Peer("plain JAX (stencil + remat)", "bench_ref_jax.py",
                ("--variants", "shift_remat", "--modes", "train,infer"),
                "ref_shift_remat_train_B8_N96", "ref_shift_remat_fwd_B1_N1000", "ref_shift_remat_fwd_B64_N100"),
    # CAX takes ~2 minutes per training step on 2 cores: one timed repetition, no rollouts.
    "cax": Peer("CAX", "bench_cax_growing.py", ("--only", "cax_distill", "--warmups", "0"),
                "cax_distill_train_N96", None, None),
}


def peer_python(name: str, given: str | None) -> str | None:
    """The interpreter for a peer: the flag, else its environment variable, else (plain JAX
    only, which needs nothing beyond this project's packages) this interpreter."""
    if given:
        return given
    env = os.environ.get(f"NCA_BENCH_{name.upper()}_PYTHON")
    if env:
        return env
    return sys.executable if name == "jax" else None


def run_peer(peer: Peer, python: str, peers_dir: Path, reps: int, timeout_s: float) -> dict[str, dict]:
    """Run one peer script; returns its timing lines by name ({} and a message on failure)."""
    reps = 1 if peer.script == "bench_cax_growing.py" else reps
    cmd = [python, str(peers_dir / peer.script), *peer.args, "--reps", str(reps)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"peer {peer.label}: not run ({e})", file=sys.stderr)
        return {}
    lines = {}
    for line in proc.stdout.splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if isinstance(d, dict) and "name" in d and "ms_min" in d:
            lines[d["name"]] = d
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        print(f"peer {peer.label}: failed (exit {proc.returncode}): {tail[0]}", file=sys.stderr)
    return lines
