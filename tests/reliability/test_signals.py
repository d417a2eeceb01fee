"""Signals sent to real processes at every stage of a run: SIGINT, SIGTERM, SIGHUP and SIGKILL.

Issue 8, items 6, 7 and 10. The process under test is ``locband`` itself (or RELION's view of it,
``wrappers/locband-relion-external``), started in its own process group and stopped at a stage by
``tests/helpers/stage_pause.py`` (the test waits for a marker file, so nothing here depends on
timing); the signal goes to the whole process group, as ``scancel`` and a terminal send it.

Each case asserts the exit code, the one line on stderr, that the inputs are byte-identical, and
what the output folder holds: after SIGINT/SIGTERM/SIGHUP the previous complete set and no
temporary file (or, when the signal came while the renames of the new set were under way, the
complete new set: the renames hold the signal for their few milliseconds); after SIGKILL the
previous set, or a set that ``locband report`` refuses as incomplete, and the next run cleans up.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest
from output_sets import (
    STAGE_PAUSE,
    copy_tree,
    digest,
    finish,
    one_line,
    run_locband,
    signal_group,
    start_paused,
    temporaries,
    wait_for,
    write_inputs,
)

from locband.cli import main

STAGES = ["read", "filter", "report", "write", "replace"]
NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
WRAPPER = Path(__file__).resolve().parents[2] / "wrappers" / "locband-relion-external"


def inspect_output_set(out: Path):  # type: ignore[no-untyped-def]
    from locband.io.outputs import inspect_output_set as inspect

    return inspect(out)


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs in ``in/`` and a complete earlier run (report included) in ``out/``."""
    root = tmp_path_factory.mktemp("previous")
    h1, h2, mask = write_inputs(root / "in")
    assert main(["filter", str(h1), str(h2), "--mask", str(mask), "--out-dir", str(root / "out"), "--quiet"]) == 0
    return root


@pytest.fixture
def work(previous: Path, tmp_path: Path) -> Path:
    return copy_tree(previous, tmp_path / "w")


def _argv(work: Path) -> list[str]:
    """A second run with another setting, so that its outputs differ from the previous ones."""
    return ["filter", str(work / "in" / "h1.mrc"), str(work / "in" / "h2.mrc"), "--mask", str(work / "in" / "mask.mrc"),
            "--out-dir", str(work / "out"), "--quiet", "--criterion", "0.3"]


def _is_new_complete_set(out: Path) -> bool:
    """Every file belongs to one run (the manifest), and that run is the second one (its setting)."""
    summary = json.loads((out / "summary.json").read_text())
    return summary["settings"]["criterion"] == 0.3 and inspect_output_set(out).complete


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("stage", STAGES)
def test_filter_interrupted(work: Path, stage: str, sig: int) -> None:
    inputs, before = digest(work / "in"), digest(work / "out")
    marker = work / "at_stage"
    proc = start_paused(_argv(work), stage=stage, marker=marker)
    wait_for(marker, proc)
    signal_group(proc, sig)
    if stage == "replace":  # the renames hold the signal; let them go on
        Path(f"{marker}.go").touch()
    rc, _, err = finish(proc)
    assert rc == 128 + sig, err
    assert digest(work / "in") == inputs
    assert temporaries(work / "out") == []
    if stage == "replace":  # the signal came after the new set was in place
        assert _is_new_complete_set(work / "out")
    else:
        assert digest(work / "out") == before
    assert one_line(err) == f"locband filter: interrupted by {NAMES[sig]}; stopped"


def test_filter_hangup_while_filtering(work: Path) -> None:
    inputs, before = digest(work / "in"), digest(work / "out")
    marker = work / "at_stage"
    proc = start_paused(_argv(work), stage="filter", marker=marker)
    wait_for(marker, proc)
    signal_group(proc, signal.SIGHUP)
    rc, _, err = finish(proc)
    assert rc == 129
    assert one_line(err) == "locband filter: interrupted by SIGHUP; stopped"
    assert digest(work / "in") == inputs and digest(work / "out") == before


@pytest.mark.parametrize("stage", STAGES)
def test_filter_killed(work: Path, stage: str, capsys: pytest.CaptureFixture[str]) -> None:
    """SIGKILL cannot be caught: the folder holds the previous set or one that is recognised as incomplete."""
    inputs, before = digest(work / "in"), digest(work / "out")
    out = work / "out"
    marker = work / "at_stage"
    proc = start_paused(_argv(work), stage=stage, marker=marker)
    wait_for(marker, proc)
    signal_group(proc, signal.SIGKILL)
    rc, _, err = finish(proc)
    assert rc == -signal.SIGKILL and err == ""
    assert digest(work / "in") == inputs
    left = {k: v for k, v in digest(out).items() if not k.endswith(".tmp")}
    if stage == "replace":  # killed between two renames: filtered.mrc is new, the rest old
        assert left != before
        assert main(["report", str(out)]) == 1
        message = one_line(capsys.readouterr().err)
        assert message.startswith(f"locband report: error: output folder {str(out)!r} holds an incomplete set of "
                                  "outputs: it holds no locband_manifest.json")
    else:  # the previous set, untouched (temporary files at most)
        assert left == before
        assert inspect_output_set(out).complete
        assert (temporaries(out) != []) == (stage == "write")
    if stage in ("write", "replace"):  # the next run removes what the killed one left
        proc2 = run_locband(*_argv(work))
        assert proc2.returncode == 0, proc2.stderr
        assert temporaries(out) == [] and inspect_output_set(out).complete


# --------------------------------------------------------------------------------------------
# RELION External job: RELION sees an exit file after every signal but a SIGKILL of everything
# --------------------------------------------------------------------------------------------

def _fake_python(tmp_path: Path) -> Path:
    """A stand-in for $LOCBAND_PYTHON that runs locband through stage_pause.py."""
    fake = tmp_path / "python-paused"
    fake.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{STAGE_PAUSE}" "$@"\n')
    fake.chmod(0o755)
    return fake


def _start_job(work: Path, stage: str) -> tuple[object, Path, Path]:
    job = work / "External" / "job012"
    marker = work / "at_stage"
    command = [str(WRAPPER), "--o", f"{job}/", "--half1", str(work / "in" / "h1.mrc"), "--half2",
               str(work / "in" / "h2.mrc"), "--in_mask", str(work / "in" / "mask.mrc"), "--report", "no", "--j", "1"]
    proc = start_paused([], stage=stage, marker=marker, command=command,
                        extra_env={"LOCBAND_PYTHON": str(_fake_python(work))})
    return proc, marker, job


@pytest.mark.parametrize(("stage", "sig"), [("read", signal.SIGTERM), ("filter", signal.SIGTERM),
                                            ("write", signal.SIGTERM), ("filter", signal.SIGINT),
                                            ("filter", signal.SIGHUP)])
def test_relion_external_job_signalled(work: Path, stage: str, sig: int) -> None:
    """``kill -TERM -- -PGID`` (what scancel does) at each stage: RELION_JOB_EXIT_FAILURE, no partial output."""
    inputs = digest(work / "in")
    proc, marker, job = _start_job(work, stage)
    wait_for(marker, proc)  # type: ignore[arg-type]
    signal_group(proc, sig)  # type: ignore[arg-type]
    rc, _, err = finish(proc)  # type: ignore[arg-type]
    assert rc == 128 + sig, err
    assert one_line(err) == f"locband: interrupted by {NAMES[sig]}; job stopped, RELION_JOB_EXIT_FAILURE written"
    assert sorted(p.name for p in job.iterdir()) == ["RELION_JOB_EXIT_FAILURE", "locband.log"]
    assert digest(work / "in") == inputs


def test_relion_external_python_killed_alone(work: Path) -> None:
    """Python dies of SIGKILL (the OOM killer): the wrapper still leaves the failure file."""
    import os

    proc, marker, job = _start_job(work, "filter")
    pid = wait_for(marker, proc)  # type: ignore[arg-type]
    os.kill(pid, signal.SIGKILL)
    rc, _, err = finish(proc)  # type: ignore[arg-type]
    assert rc == 128 + signal.SIGKILL
    assert one_line(err) == "locband-relion-external: locband exited with code 137 before writing an exit file"
    assert {p.name for p in job.iterdir()} >= {"RELION_JOB_EXIT_FAILURE"}
    assert temporaries(job) == []


def test_relion_hook_terminated_while_waiting_tells_the_other_half(tmp_path: Path) -> None:
    """SIGTERM to a hook call waiting for its partner: exit 143, one line, a failure marker, no map."""
    import os
    import subprocess
    import time

    from extrec_job import WRAPPER as HOOK
    from extrec_job import env, write_job
    from output_sets import GUARD_S

    stars = {h: os.path.relpath(s, tmp_path) for h, s in write_job(tmp_path / "Refine3D/job007", n=16).items()}
    rv = tmp_path / "Refine3D/job007/locband_extrec/run_it002_class001"
    # the wrapper itself (it execs Python), so that the exit code is locband's, not a shell's
    proc = subprocess.Popen([str(HOOK), "--timeout", str(GUARD_S), stars[1]], cwd=tmp_path, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    t0 = time.monotonic()
    while not (rv / "half1.json").exists() and time.monotonic() - t0 < GUARD_S:  # waiting for half 2 now
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=GUARD_S)
    assert proc.returncode == 143
    assert one_line(err) == "locband relion-reconstruct: interrupted by SIGTERM; stopped"
    assert "interrupted by SIGTERM" in json.loads((rv / "half1.failed").read_text())["reason"]
    assert not (tmp_path / stars[1].replace(".star", ".mrc")).exists()
    assert temporaries(tmp_path) == []
