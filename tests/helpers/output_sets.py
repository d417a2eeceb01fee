"""Shared by the reliability tests of output folders and signals: inputs, digests, subprocesses.

What a test may conclude about an output folder after a fault: it holds the complete previous
set (byte for byte), or a complete new set (``inspect_output_set``), or ``locband report``
refuses it as incomplete. Anything else is a silent mix of two runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from locband.engine.synthetic import synthetic_pair
from locband.io.mrc import write_map

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "plugin"
STAGE_PAUSE = Path(__file__).resolve().parent / "stage_pause.py"
#: longest any process of these tests may take before the test calls it a hang (a loaded 2-core
#: CI machine starts Python with numpy and scipy in a few seconds; nothing here is timed)
GUARD_S = 300
PIXEL = 1.5
SHAPE = (32, 32, 32)


def write_inputs(folder: Path, *, names: tuple[str, str, str] = ("h1.mrc", "h2.mrc", "mask.mrc"),
                 seed: int = 11) -> tuple[Path, Path, Path]:
    """Two half-maps and a mask (32^3, 1.5 Å) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    pair = synthetic_pair(SHAPE, noise_std=0.7, seed=seed)
    paths = []
    for name, vol in zip(names, (pair.half1, pair.half2, pair.mask), strict=True):
        write_map(folder / name, vol, pixel_size_angstrom=PIXEL)
        paths.append(folder / name)
    return paths[0], paths[1], paths[2]


def digest(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``folder`` (folders as '<dir>'); {} if it is missing."""
    if not folder.exists():
        return {}
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def temporaries(folder: Path) -> list[str]:
    """Temporary files (``*.tmp``) under ``folder``."""
    return sorted(p.name for p in folder.rglob("*.tmp")) if folder.exists() else []


def copy_tree(src: Path, dst: Path) -> Path:
    """A copy of ``src`` at ``dst`` (modes and times kept)."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


def env(**extra: str) -> dict[str, str]:
    """Environment for a locband subprocess: this checkout's code, this interpreter, no colour or TTY."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("LOCBAND_TEST_")}
    e["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGIN), str(STAGE_PAUSE.parent), e.get("PYTHONPATH", ""))
                                      if p)
    e["LOCBAND_PYTHON"] = sys.executable
    e.setdefault("OMP_NUM_THREADS", "1")
    e.update(extra)
    return e


def run_locband(*argv: str, cwd: Path | None = None, preexec_fn=None,  # type: ignore[no-untyped-def]
                extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m locband.cli ARGV`` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "locband.cli", *argv], cwd=cwd, env=env(**(extra_env or {})),
                          capture_output=True, text=True, timeout=GUARD_S, preexec_fn=preexec_fn, check=False)


def start_paused(argv: list[str], *, stage: str, marker: Path, cwd: Path | None = None,
                 command: list[str] | None = None, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``locband ARGV`` (or ``command``) in its own process group, stopping at ``stage``."""
    cmd = command if command is not None else [sys.executable, str(STAGE_PAUSE), *argv]
    return subprocess.Popen(cmd, cwd=cwd, env=env(LOCBAND_TEST_STAGE=stage, LOCBAND_TEST_MARKER=str(marker),
                                                  **(extra_env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(marker: Path, proc: subprocess.Popen[str]) -> int:
    """Wait until the process has reached its stage; returns the pid written into the marker."""
    t0 = time.monotonic()
    while not marker.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process ended (exit {proc.returncode}) before its stage:\n{out}\n{err}")
        if time.monotonic() - t0 > GUARD_S:
            proc.kill()
            raise AssertionError(f"the process did not reach its stage within {GUARD_S} s")
        time.sleep(0.02)
    while True:  # the pid is written right after the file is created
        text = marker.read_text().strip()
        if text:
            return int(text)
        time.sleep(0.01)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Wait for the process; returns (exit code, stdout, stderr)."""
    out, err = proc.communicate(timeout=GUARD_S)
    return proc.returncode, out, err


def signal_group(proc: subprocess.Popen[str], sig: int) -> None:
    """Send ``sig`` to the process group (what scancel and a terminal do)."""
    os.killpg(proc.pid, sig)


def one_line(err: str) -> str:
    """The single line on stderr; fails if there are more or none."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err, err
    return lines[0]


def different(a: np.ndarray, b: np.ndarray) -> bool:
    """True unless the two arrays are identical."""
    return not np.array_equal(a, b)


SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP", signal.SIGKILL: "SIGKILL"}
