"""The meeting of the two half-set calls: real processes started as relion_refine starts them.

Each call is ``sh -c "<wrapper> <star>"`` from the project folder, the two at once (MPI ranks 1
and 2). Covered: the normal hand-over, a crash in one half, stale state of a crashed or re-run
iteration, ``--sequential_halves_recons`` and the timeout. Guard timeouts are generous so that
a regression fails on its message instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from extrec_job import WRAPPER, start, write_job

from locband import local_filter
from locband.adapters import relion_extrec
from locband.errors import RendezvousError
from locband.io.mrc import read_map
from locband.io.relion_star import parse_hook_name, read_external_reconstruct_star

JOB = Path("Refine3D/job007")
GUARD_S = 60  # longest any process may take here before the test calls it a hang


def _finish(proc) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    out, err = proc.communicate(timeout=GUARD_S)
    return proc.returncode, out, err


def _result(tmp_path: Path, star: str) -> np.ndarray:
    with mrcfile.open(tmp_path / read_external_reconstruct_star(tmp_path / star).result) as m:
        return np.array(m.data)


def test_two_concurrent_calls_meet_and_both_write(tmp_path: Path) -> None:
    stars = write_job(tmp_path / JOB, n=24)
    stars = {h: os.path.relpath(s, tmp_path) for h, s in stars.items()}
    procs = {h: start(stars[h], cwd=tmp_path) for h in (1, 2)}
    res = {h: _finish(p) for h, p in procs.items()}
    for h in (1, 2):
        rc, out, err = res[h]
        assert rc == 0, err
        assert out.startswith(f"locband: it002 half{h}: ") and " bands, local resolution " in out
        assert _result(tmp_path, stars[h]).shape == (24, 24, 24)
    log = [json.loads(x) for x in (tmp_path / JOB / relion_extrec.HOOK_LOG_NAME).read_text().splitlines()]
    assert sorted(r["half"] for r in log) == [1, 2]
    # each call wrote its own half of ONE joint filter of the two unregularised halves it exchanged:
    # the same filter run here on the maps they left in the meeting folder gives both results exactly
    met = tmp_path / JOB / relion_extrec.RENDEZVOUS_DIR / "run_it002_class001"
    h1, h2 = (read_map(met / f"half{h}.mrc").data for h in (1, 2))
    joint = local_filter(h1, h2, pixel_size_angstrom=1.0)  # no pixel size anywhere: 1 Å (logged as unknown)
    assert all(r["pixel_size_source"].startswith("unknown") for r in log)
    np.testing.assert_array_equal(_result(tmp_path, stars[1]), joint.half1)
    np.testing.assert_array_equal(_result(tmp_path, stars[2]), joint.half2)
    assert not np.array_equal(joint.half1, joint.half2)  # each half weighted on its own


def test_crash_in_one_half_fails_the_other_at_once(tmp_path: Path) -> None:
    stars = write_job(tmp_path / JOB, n=24)
    stars = {h: os.path.relpath(s, tmp_path) for h, s in stars.items()}
    (tmp_path / stars[2].replace(".star", "_weight.mrc")).write_bytes(b"truncated by a full disk")
    procs = {h: start(stars[h], "--timeout", str(GUARD_S), cwd=tmp_path) for h in (1, 2)}
    rc2, _, err2 = _finish(procs[2])
    rc1, _, err1 = _finish(procs[1])
    assert rc2 == 1 and "weight" in err2 and ("is not a readable MRC file" in err2 or "is not an MRC file" in err2)
    # not a timeout: half 1 read half 2's failure marker
    assert rc1 == 1 and "half 2 of iteration 2 failed" in err1 and "timed out" not in err1
    for h in (1, 2):  # never a map for RELION to read after a failure
        assert not (tmp_path / read_external_reconstruct_star(tmp_path / stars[h]).result).exists()


def test_early_failure_of_one_half_is_reported(tmp_path: Path) -> None:
    stars = write_job(tmp_path / JOB, n=24)
    stars = {h: os.path.relpath(s, tmp_path) for h, s in stars.items()}
    (tmp_path / stars[2]).write_text("data_nonsense\n")  # the STAR file itself is unreadable
    procs = {h: start(stars[h], "--timeout", str(GUARD_S), cwd=tmp_path) for h in (1, 2)}
    rc2, _, err2 = _finish(procs[2])
    rc1, _, err1 = _finish(procs[1])
    assert rc2 == 1 and "is not a readable STAR file" in err2, err2
    assert rc1 == 1 and "half 2 of iteration 2 failed" in err1


def test_stale_state_of_a_crashed_run_is_never_used(tmp_path: Path) -> None:
    stars = write_job(tmp_path / JOB, n=24, seed=0)
    stars = {h: os.path.relpath(s, tmp_path) for h, s in stars.items()}
    # first run: only half 2 completes its part, half 1 "crashes" (never runs): its records stay
    p2 = start(stars[2], "--timeout", "1", cwd=tmp_path)
    rc, _, err = _finish(p2)
    assert rc == 1 and "timed out after 1 s waiting for half 1" in err
    rv_dir = tmp_path / JOB / relion_extrec.RENDEZVOUS_DIR / "run_it002_class001"
    assert (rv_dir / "half2.json").is_file() and (rv_dir / "half2.failed").is_file()
    # re-run of the iteration: relion_refine rewrites both halves' arrays first
    time.sleep(0.01)
    stars = write_job(tmp_path / JOB, n=24, seed=10)
    stars = {h: os.path.relpath(s, tmp_path) for h, s in stars.items()}
    # half 1 alone must neither take the stale half-2 map nor the stale failure marker
    rc, _, err = _finish(start(stars[1], "--timeout", "1", cwd=tmp_path))
    assert rc == 1 and "timed out after 1 s waiting for half 2" in err
    # that attempt failed too; the next re-run (arrays rewritten again) has both halves: success
    time.sleep(0.01)
    stars = write_job(tmp_path / JOB, n=24, seed=20)
    stars = {h: os.path.relpath(s, tmp_path) for h, s in stars.items()}
    procs = {h: start(stars[h], cwd=tmp_path) for h in (1, 2)}
    res = {h: _finish(p) for h, p in procs.items()}
    assert res[1][0] == 0 and res[2][0] == 0, (res[1][2], res[2][2])


def test_partner_arrays_much_older_than_ours_are_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    stars = write_job(JOB, n=24)
    name = parse_hook_name(stars[1])
    s1 = read_external_reconstruct_star(stars[1])
    s2 = read_external_reconstruct_star(stars[2])
    # half 2's record and map match its (old) data file exactly, but that file is two minutes
    # older than ours: left by an earlier run whose half 2 has not rewritten it yet
    old = time.time() - 120
    os.utime(s2.data_real, (old, old))
    rv2 = relion_extrec.Rendezvous(JOB, parse_hook_name(stars[2]), s2.data_real, timeout_s=1)
    rv2.begin()
    rv2.publish(np.ones((24, 24, 24), np.float32), pixel_size_angstrom=1.0)
    rv1 = relion_extrec.Rendezvous(JOB, name, s1.data_real, timeout_s=0.3)
    with pytest.raises(RendezvousError, match=r"timed out after 0.3 s waiting for half 2"):
        rv1.wait_for_partner()
    # the same record with current arrays is taken
    os.utime(s2.data_real, None)
    rv2.publish(np.ones((24, 24, 24), np.float32), pixel_size_angstrom=1.0)
    np.testing.assert_array_equal(rv1.wait_for_partner(), np.ones((24, 24, 24), np.float32))


def test_other_mpi_job_is_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    stars = write_job(JOB, n=24)
    s1, s2 = (read_external_reconstruct_star(stars[h]) for h in (1, 2))
    monkeypatch.setenv("PMIX_NAMESPACE", "mpirun-run-A")
    rv2 = relion_extrec.Rendezvous(JOB, parse_hook_name(stars[2]), s2.data_real, timeout_s=1)
    rv2.begin()
    rv2.publish(np.ones((24, 24, 24), np.float32), pixel_size_angstrom=1.0)
    monkeypatch.setenv("PMIX_NAMESPACE", "mpirun-run-B")
    rv1 = relion_extrec.Rendezvous(JOB, parse_hook_name(stars[1]), s1.data_real, timeout_s=0.3)
    with pytest.raises(RendezvousError, match="timed out"):
        rv1.wait_for_partner()


def _fake_relion_refine(tmp_path: Path, star: str, *options: str) -> subprocess.Popen[bytes]:
    """A stand-in for relion_refine_mpi (with ``options`` on its command line) that calls the hook as RELION does."""
    from extrec_job import env

    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    fake = bindir / "relion_refine_mpi"
    fake.write_text(f'#!/bin/sh\nsh -c "{WRAPPER} --timeout {GUARD_S} {star}" 2> "{tmp_path}/hook.err"\n'
                    f'echo $? > "{tmp_path}/hook.rc"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return subprocess.Popen([str(fake), *options], cwd=tmp_path, env=env())


def test_sequential_halves_fail_at_once(tmp_path: Path) -> None:
    """relion_refine_mpi --sequential_halves_recons runs half 2 only after half 1 returned: refuse at once."""
    stars = write_job(tmp_path / JOB, n=24)
    stars = {h: os.path.relpath(s, tmp_path) for h, s in stars.items()}
    t0 = time.monotonic()
    relion = _fake_relion_refine(tmp_path, stars[1], "--o", "Refine3D/job007/run", "--split_random_halves",
                                 "--sequential_halves_recons", "--external_reconstruct")
    assert relion.wait(timeout=GUARD_S) == 0
    err = (tmp_path / "hook.err").read_text()
    assert (tmp_path / "hook.rc").read_text().strip() == "1", err
    assert "relion_refine runs with --sequential_halves_recons (seen in the command line of relion_refine" in err
    assert "Remove --sequential_halves_recons" in err
    assert time.monotonic() - t0 < GUARD_S  # it did not sit out the wait


def test_sequential_option_in_the_job_files_does_not_refuse_a_pair_by_hand(tmp_path: Path) -> None:
    """The job's files mention the option (an earlier run), but these two calls do run together: filter."""
    stars = write_job(tmp_path / JOB, n=24)
    stars = {h: os.path.relpath(s, tmp_path) for h, s in stars.items()}
    (tmp_path / JOB / "run_it001_optimiser.star").write_text(
        "# RELION optimiser; version 3.1.3\n# --o Refine3D/job007/run --auto_refine --split_random_halves "
        "--sequential_halves_recons --external_reconstruct\n\ndata_optimiser_general\n\n"
        "_rlnSolventMaskName None\n")
    (tmp_path / JOB / "note.txt").write_text("relion_refine_mpi --o Refine3D/job007/run --sequential_halves_recons\n")
    procs = {h: start(stars[h], "--timeout", str(GUARD_S), cwd=tmp_path) for h in (1, 2)}
    res = {h: _finish(p) for h, p in procs.items()}
    for h in (1, 2):
        assert res[h][0] == 0, res[h][2]
        assert res[h][1].startswith(f"locband: it002 half{h}: ")


def test_timeout_names_the_missing_partner(tmp_path: Path) -> None:
    stars = write_job(tmp_path / JOB, n=24, halves=(1,))
    star = os.path.relpath(stars[1], tmp_path)
    rc, out, err = _finish(start(star, "--timeout", "0.5", cwd=tmp_path))
    assert rc == 1 and out == ""
    assert "timed out after 0.5 s waiting for half 2 of iteration 2" in err
    assert "run_it002_class001/half2.json" in err
    assert "run_it002_half2_class001_external_reconstruct_data_real.mrc" in err
    assert not (tmp_path / read_external_reconstruct_star(tmp_path / star).result).exists()


def test_older_iterations_are_cleaned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    base = JOB / relion_extrec.RENDEZVOUS_DIR
    for it in range(1, 6):
        d = base / f"run_it{it:03d}_class001"
        d.mkdir(parents=True)
        for f in ("half1.mrc", "half1.json", "half2.mrc", "half2.json"):
            (d / f).write_text("x")
    stars = write_job(JOB, iteration=5, n=24, halves=(1,))
    rv = relion_extrec.Rendezvous(JOB, parse_hook_name(stars[1]), read_external_reconstruct_star(stars[1]).data_real,
                                  timeout_s=1)
    rv.clean_older()
    for it in (1, 2, 3):  # half 1's files gone, half 2's left to half 2
        assert sorted(p.name for p in (base / f"run_it{it:03d}_class001").iterdir()) == ["half2.json", "half2.mrc"]
    assert len(list((base / "run_it004_class001").iterdir())) == 4  # kept for --final filter


def _fake_bin(tmp_path: Path, name: str) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    exe = bindir / name
    exe.write_text(f'#!/bin/sh\necho "{name} PYTHONPATH=$PYTHONPATH ARGS=$*" > "{tmp_path}/called"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return bindir


@pytest.mark.parametrize("found", ["locband", "python3"])
def test_wrapper_finds_python(tmp_path: Path, found: str) -> None:
    bindir = _fake_bin(tmp_path, found)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    if found == "python3":  # no locband on PATH: the source checkout beside the wrapper
        env["PATH"] = str(bindir) + ":/bin:/usr/bin"
    proc = subprocess.run(["sh", "-c", f"{WRAPPER} --threads 2 x_external_reconstruct.star"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=GUARD_S)
    assert proc.returncode == 0, proc.stderr
    called = (tmp_path / "called").read_text()
    if found == "locband":
        assert "ARGS=relion-reconstruct --threads 2 x_external_reconstruct.star" in called
    else:
        assert "ARGS=-c import sys" in called  # the one-line-error bootstrap, then the subcommand
        assert "entry_point() relion-reconstruct --threads 2 x_external_reconstruct.star" in called
        assert str(WRAPPER.parent.parent / "plugin") in called.replace("/wrappers/..", "")


def test_waiting_stops_when_relion_refine_exits(tmp_path: Path) -> None:
    stars = write_job(tmp_path / JOB, n=24, halves=(1,))
    star = os.path.relpath(stars[1], tmp_path)
    # a stand-in for relion_refine_mpi that calls the hook as RELION does (system() -> sh -c)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "relion_refine_mpi"
    fake.write_text(f'#!/bin/sh\nsh -c "{WRAPPER} --timeout {GUARD_S} {star}" 2> "{tmp_path}/hook.err"\n'
                    f'echo $? > "{tmp_path}/hook.rc"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    from extrec_job import env

    relion = subprocess.Popen([str(fake)], cwd=tmp_path, env=env())
    rv_json = tmp_path / JOB / relion_extrec.RENDEZVOUS_DIR / "run_it002_class001" / "half1.json"
    t0 = time.monotonic()
    while not rv_json.exists() and time.monotonic() - t0 < GUARD_S:  # the hook is waiting for half 2
        time.sleep(0.05)
    relion.kill()  # relion_refine dies (e.g. MPI_Abort); the hook is orphaned
    relion.wait()
    t0 = time.monotonic()
    while not (tmp_path / "hook.err").read_text() and time.monotonic() - t0 < GUARD_S:
        time.sleep(0.05)
    assert "has exited while half 1 was waiting for half 2" in (tmp_path / "hook.err").read_text()


def test_failed_call_then_a_correct_pair_of_the_same_iteration_succeeds(tmp_path: Path) -> None:
    """A by-hand repeat finds RELION's arrays unchanged: the old failure marker must not fail it."""
    stars = write_job(tmp_path / JOB, n=24)
    stars = {h: os.path.relpath(s, tmp_path) for h, s in stars.items()}
    rv_dir = tmp_path / JOB / relion_extrec.RENDEZVOUS_DIR / "run_it002_class001"
    # a failed call: half 2 alone gives up waiting and leaves its failure marker
    rc, _, err = _finish(start(stars[2], "--timeout", "0.5", cwd=tmp_path))
    assert rc == 1 and "timed out after 0.5 s waiting for half 1" in err
    assert (rv_dir / "half2.failed").is_file()
    # the same iteration by hand, one call after the other: half 1 is waiting before half 2 starts
    p1 = start(stars[1], "--timeout", str(GUARD_S), cwd=tmp_path)
    t0 = time.monotonic()
    while not (rv_dir / "half1.json").exists() and p1.poll() is None and time.monotonic() - t0 < GUARD_S:
        time.sleep(0.02)
    p2 = start(stars[2], "--timeout", str(GUARD_S), cwd=tmp_path)
    res = {1: _finish(p1), 2: _finish(p2)}
    for h in (1, 2):
        assert res[h][0] == 0, res[h][2]
        assert res[h][1].startswith(f"locband: it002 half{h}: ")
    assert not (rv_dir / "half2.failed").exists()


def test_old_failure_marker_counts_when_no_new_call_comes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A marker older than this call is an earlier call's; it still ends the wait if the other half never restarts."""
    monkeypatch.chdir(tmp_path)
    grace = 0.5
    monkeypatch.setattr(relion_extrec.rendezvous, "_OLD_FAILURE_GRACE_S", grace)
    stars = write_job(JOB, n=24)
    s1, s2 = (read_external_reconstruct_star(stars[h]) for h in (1, 2))
    relion_extrec.Rendezvous(JOB, parse_hook_name(stars[2]), s2.data_real, timeout_s=1).fail("disk full")
    time.sleep(0.01)
    rv1 = relion_extrec.Rendezvous(JOB, parse_hook_name(stars[1]), s1.data_real, timeout_s=GUARD_S)
    rv1.started_unix = time.time()  # this call starts after the marker was written
    t0 = time.monotonic()
    with pytest.raises(RendezvousError,
                       match=r"half 2 of iteration 2 failed \(at .*, before this call started.*\): disk full"):
        rv1.wait_for_partner()
    assert time.monotonic() - t0 >= grace * 0.9  # it waited for a new call first (0.9: monotonic vs wall clock)
    # a marker written after this call started counts at once (never waited for: the grace is
    # endless now, and the call would time out after 1 s instead)
    monkeypatch.setattr(relion_extrec.rendezvous, "_OLD_FAILURE_GRACE_S", 1e9)
    rv1 = relion_extrec.Rendezvous(JOB, parse_hook_name(stars[1]), s1.data_real, timeout_s=1)
    rv1.started_unix = time.time() - 5
    with pytest.raises(RendezvousError, match=r"half 2 of iteration 2 failed: disk full"):
        rv1.wait_for_partner()
