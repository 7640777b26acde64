import os

# Keep the suite on the CPU and quiet, whatever machine runs it.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The suite compiles a few hundred small programs and runs each briefly, so LLVM's
# optimisation passes cost more time than they save: at level 0 the whole suite ran in
# about two thirds of the time on a 2-core machine. Numerics are unchanged in kind (no
# fast-math); every comparison in the tests is between programs built the same way.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
# XLA's CPU fusion emitters (MLIR, the default in this JAX) took twice as long to compile
# as the classic emitters: two compile-heavy tests ran in 12.5-14.5 s of CPU instead of
# 23.2-24.2 s (alternated, 2026-11-30). Same reasoning as above: every comparison is
# between programs built with the same flags.
if "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_use_fusion_emitters=false").strip()

# One persistent compilation cache for the whole run, shared by the xdist workers and the
# scripts the tests start in subprocesses (they inherit the environment): a program compiled
# once is loaded, not compiled again, by every other process that builds it.
CACHE_PREFIX = "nca-test-jax-cache-"


def sweep_stale_caches(folder: str) -> list[str]:
    """Remove the caches of earlier runs whose process is gone (``<prefix><pid>-*``; a run
    killed with SIGKILL never reaches its atexit). Returns the folders removed."""
    import shutil

    removed = []
    for name in os.listdir(folder):
        pid = name[len(CACHE_PREFIX):].split("-", 1)[0]
        if not (name.startswith(CACHE_PREFIX) and pid.isdigit()):
            continue
        try:
            os.kill(int(pid), 0)  # alive (or someone else's): leave it
        except ProcessLookupError:
            shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
            removed.append(name)
        except OSError:
            pass
    return removed


if "JAX_COMPILATION_CACHE_DIR" not in os.environ and os.environ.get("NCA_TEST_CACHE", "1") != "0":
    import atexit
    import shutil
    import tempfile

    sweep_stale_caches(tempfile.gettempdir())
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache = tempfile.mkdtemp(prefix=f"{CACHE_PREFIX}{os.getpid()}-")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
