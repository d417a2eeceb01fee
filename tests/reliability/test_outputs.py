"""Output faults: inputs never overwritten, never a mix of two runs, one line for every write error.

Issue 8, items 1, 7 and 10 (output side). Every case asserts the exit code, the one-line message
(it names the file and what was wrong), that the inputs are byte-identical afterwards, and what
the output folder holds: the previous complete set byte for byte, a complete new set, or a set
that ``locband report`` refuses as incomplete.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from output_sets import GUARD_S, copy_tree, digest, env, one_line, run_locband, temporaries, write_inputs

from locband.cli import main

MANIFEST_NAME = "locband_manifest.json"
SET = {"filtered.mrc", "filtered_half1.mrc", "filtered_half2.mrc", "local_resolution.mrc", "summary.json",
       MANIFEST_NAME}
REPORT = {"report.png", "report.pdf"}


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs in ``in/`` and a complete earlier run (report included) in ``out/``; copied by each test."""
    root = tmp_path_factory.mktemp("previous")
    h1, h2, mask = write_inputs(root / "in")
    assert main(["filter", str(h1), str(h2), "--mask", str(mask), "--out-dir", str(root / "out"), "--quiet"]) == 0
    return root


@pytest.fixture
def work(previous: Path, tmp_path: Path) -> Path:
    """A private copy of ``previous``."""
    return copy_tree(previous, tmp_path / "w")


def _filter(work: Path, *extra: str, out: Path | None = None) -> list[str]:
    return ["filter", str(work / "in" / "h1.mrc"), str(work / "in" / "h2.mrc"), "--mask", str(work / "in" / "mask.mrc"),
            "--out-dir", str(out or work / "out"), "--quiet", *extra]


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    return one_line(capsys.readouterr().err)


def inspect_output_set(out: Path):  # type: ignore[no-untyped-def]
    """The folder's state, as everything that reads an output folder back checks it."""
    from locband.io.outputs import inspect_output_set as inspect

    return inspect(out)


# --------------------------------------------------------------------------------------------
# item 1: an output that resolves to an input is refused before any work
# --------------------------------------------------------------------------------------------

def _same_path(work: Path) -> tuple[list[str], str, str]:
    """The issue's repro: filter the outputs of a run back into the same folder."""
    out = work / "out"
    return (["filter", str(out / "filtered_half1.mrc"), str(out / "filtered_half2.mrc"), "--out-dir", str(out),
             "--quiet"], str(out / "filtered_half1.mrc"), str(out / "filtered_half1.mrc"))


def _folder_symlink(work: Path) -> tuple[list[str], str, str]:
    """The output folder is a symbolic link to the folder of the inputs, which carry output names."""
    src = work / "src"
    src.mkdir()
    for a, b in (("h1.mrc", "filtered_half1.mrc"), ("h2.mrc", "filtered_half2.mrc")):
        shutil.copy(work / "in" / a, src / b)
    (work / "link").symlink_to(src)
    return (["filter", str(src / "filtered_half1.mrc"), str(src / "filtered_half2.mrc"), "--out-dir",
             str(work / "link"), "--quiet"], str(work / "link" / "filtered_half1.mrc"), str(src / "filtered_half1.mrc"))


def _file_symlink(work: Path) -> tuple[list[str], str, str]:
    """An output name in the folder is a symbolic link to half-map 1."""
    (work / "out" / "filtered.mrc").unlink()
    (work / "out" / "filtered.mrc").symlink_to(work / "in" / "h1.mrc")
    return _filter(work), str(work / "out" / "filtered.mrc"), str(work / "in" / "h1.mrc")


def _hard_link(work: Path) -> tuple[list[str], str, str]:
    """An output name in the folder is a hard link to half-map 2."""
    (work / "out" / "local_resolution.mrc").unlink()
    os.link(work / "in" / "h2.mrc", work / "out" / "local_resolution.mrc")
    return _filter(work), str(work / "out" / "local_resolution.mrc"), str(work / "in" / "h2.mrc")


def _mask(work: Path) -> tuple[list[str], str, str]:
    """The mask lives in the output folder under an output name."""
    shutil.copy(work / "in" / "mask.mrc", work / "out" / "filtered.mrc")
    argv = _filter(work)
    argv[argv.index("--mask") + 1] = str(work / "out" / "filtered.mrc")
    return argv, str(work / "out" / "filtered.mrc"), str(work / "out" / "filtered.mrc")


def _stale_name(work: Path) -> tuple[list[str], str, str]:
    """Half-map 2 carries the name of an optional output (removed as stale when not written)."""
    shutil.copy(work / "in" / "h2.mrc", work / "out" / "band_snr.mrc")
    argv = _filter(work)
    argv[2] = str(work / "out" / "band_snr.mrc")
    return argv, str(work / "out" / "band_snr.mrc"), str(work / "out" / "band_snr.mrc")


def _report_input(work: Path) -> tuple[list[str], str, str]:
    """`locband report` redraws into a folder where half-map 1 is called report.png."""
    shutil.copy(work / "in" / "h1.mrc", work / "out" / "report.png")
    return (["report", str(work / "out"), "--half1", str(work / "out" / "report.png"), "--half2",
             str(work / "in" / "h2.mrc")], str(work / "out" / "report.png"), str(work / "out" / "report.png"))


COLLISIONS = {"same path": _same_path, "folder symlink": _folder_symlink, "file symlink": _file_symlink,
              "hard link": _hard_link, "mask": _mask, "optional output name": _stale_name,
              "report redraw": _report_input}


@pytest.mark.parametrize("case", list(COLLISIONS))
def test_output_resolving_to_an_input_is_refused(work: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    argv, output, inp = COLLISIONS[case](work)
    before = digest(work)
    assert main(argv) == 1
    err = _err(capsys)
    assert "would overwrite" in err and repr(output) in err and repr(inp) in err, err
    assert "never writes over its inputs" in err
    assert digest(work) == before  # inputs and every output untouched, nothing created


def test_relion_external_job_refuses_its_own_outputs_as_input(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """--in_3dref External/job/filtered_half1.mrc with --o External/job/: exit 1 and RELION_JOB_EXIT_FAILURE."""
    h1, h2, _ = write_inputs(tmp_path / "Refine3D", names=("run_half1_class001_unfil.mrc",
                                                           "run_half2_class001_unfil.mrc", "mask.mrc"))
    job = tmp_path / "External" / "job012"
    assert main(["relion-external", "--o", f"{job}/", "--in_3dref", str(h1), "--report", "no"]) == 0
    capsys.readouterr()
    for n in ("RELION_JOB_EXIT_SUCCESS",):
        (job / n).unlink()
    before = digest(tmp_path)
    assert main(["relion-external", "--o", f"{job}/", "--in_3dref", str(job / "filtered_half1.mrc")]) == 1
    err = _err(capsys)
    assert f"output '{job}/filtered_half1.mrc' would overwrite half-map 1 '{job}/filtered_half1.mrc'" in err, err
    after = digest(tmp_path)
    assert {k: v for k, v in after.items() if "RELION_JOB_EXIT" not in k} == before
    assert (job / "RELION_JOB_EXIT_FAILURE").is_file()


def test_cryosparc_offline_refuses_outputs_that_are_its_inputs(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from locband.io.cs import VolumeSlot, write_volume_cs

    out = tmp_path / "P1" / "locband_J42"
    write_inputs(out, names=("filtered_half1.mrc", "filtered_half2.mrc", "mask.mrc"))
    slots = {s: VolumeSlot(path=f"locband_J42/{n}", shape=(32, 32, 32), pixel_size_angstrom=1.5)
             for s, n in (("map_half_A", "filtered_half1.mrc"), ("map_half_B", "filtered_half2.mrc"))}
    write_volume_cs(out / "J42_volume.cs", slots)
    before = digest(tmp_path)
    assert main(["cryosparc", "offline", str(out / "J42_volume.cs"), "--out-dir", str(out), "--quiet"]) == 1
    err = _err(capsys)
    assert f"output '{out / 'filtered_half1.mrc'}' would overwrite map_half_A '{out / 'filtered_half1.mrc'}'" in err
    assert digest(tmp_path) == before


def test_hook_refuses_a_result_that_is_one_of_its_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A hand-written hook STAR file whose rlnExtReconsResult names the data array: exit 1, array kept."""
    from extrec_job import write_job

    monkeypatch.chdir(tmp_path)
    star = Path(write_job(Path("Refine3D/job007"), n=16, halves=(0,), split=False)[0])
    text = star.read_text()
    data_real = re.search(r"_rlnExtReconsDataReal\s+(\S+)", text).group(1)  # type: ignore[union-attr]
    star.write_text(re.sub(r"(_rlnExtReconsResult\s+)\S+", lambda m: m.group(1) + data_real, text, count=1))
    before = digest(tmp_path)
    assert main(["relion-reconstruct", str(star)]) == 1
    err = _err(capsys)
    assert f"rlnExtReconsResult {data_real!r} in {str(star)!r} is the data array (real part) {data_real!r}" in err
    assert digest(tmp_path) == before


# --------------------------------------------------------------------------------------------
# item 7: names taken, unwritable folders, a full disk
# --------------------------------------------------------------------------------------------

def test_a_folder_with_an_output_name_is_refused_before_anything_is_replaced(
        work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = work / "out" / "local_resolution.mrc"
    target.unlink()
    target.mkdir()
    before = digest(work)
    assert main(_filter(work, "--criterion", "0.3")) == 1
    assert _err(capsys) == (f"locband filter: error: cannot write {str(target)!r}: a folder of that name is in the "
                            "way; remove it or choose another output folder")
    assert digest(work) == before  # not one map replaced, no temporary file


def test_a_special_file_with_an_output_name_is_refused(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = work / "out" / "filtered.mrc"
    target.unlink()
    os.mkfifo(target)
    before = digest(work / "in")
    assert main(_filter(work, "--criterion", "0.3")) == 1
    assert "it exists and is not a regular file" in _err(capsys)
    assert stat.S_ISFIFO(target.lstat().st_mode)
    assert digest(work / "in") == before


@pytest.mark.parametrize("case", ["file", "below a file"])
def test_output_folder_that_is_a_file(work: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    blocker = work / "blocker"
    blocker.write_text("x")
    out = blocker if case == "file" else blocker / "sub"
    before = digest(work)
    assert main(_filter(work, out=out)) == 1
    err = _err(capsys)
    assert (f"output folder {str(out)!r} exists but is not a folder" in err if case == "file" else
            f"output folder {str(out)!r} cannot be created: {str(blocker)!r} is not a folder" in err), err
    assert digest(work) == before


def _without_root_override() -> None:  # pragma: no cover - runs in the child
    """Drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so that even root obeys the folder's mode 555."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2  # <linux/prctl.h>, <linux/capability.h>
    for cap in (cap_dac_override, cap_dac_read_search):
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_unwritable_output_folder(work: Path) -> None:
    """A folder this process may not write (mode 555; as root, without the capability that overrides it)."""
    out = work / "out"
    out.chmod(0o555)
    try:
        before = digest(work)
        proc = run_locband(*_filter(work, "--criterion", "0.3"),
                           preexec_fn=_without_root_override if os.geteuid() == 0 else None)
        assert proc.returncode == 1, proc.stderr
        assert one_line(proc.stderr) == f"locband filter: error: output folder {str(out)!r} is not writable"
        assert digest(work) == before
    finally:
        out.chmod(0o755)


def test_full_disk_is_one_line_and_leaves_the_previous_set(work: Path) -> None:
    """RLIMIT_FSIZE below one map's size: the first write fails with EFBIG, as on a full disk."""
    def limit() -> None:  # pragma: no cover - runs in the child
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))  # a 32^3 map is 132 KiB

    before = digest(work)
    proc = run_locband(*_filter(work, "--criterion", "0.3"), preexec_fn=limit)
    assert proc.returncode == 1, proc.stderr
    assert one_line(proc.stderr) == (f"locband filter: error: cannot write {str(work / 'out' / 'filtered.mrc')!r}: "
                                     "File too large")
    assert digest(work) == before  # the previous complete set, no temporary file


# --------------------------------------------------------------------------------------------
# item 7: one set, never a mix
# --------------------------------------------------------------------------------------------

def test_no_report_removes_the_stale_report(work: Path) -> None:
    old_summary = json.loads((work / "out" / "summary.json").read_text())
    assert main(_filter(work, "--no-report", "--criterion", "0.3")) == 0
    names = {p.name for p in (work / "out").iterdir()}
    assert names == SET  # the report of the earlier run is gone with it
    state = inspect_output_set(work / "out")
    assert state.complete and state.run_id != old_summary["run_id"]


def test_band_snr_of_an_earlier_run_is_removed(work: Path) -> None:
    assert main(_filter(work, "--band-snr", "--no-report")) == 0
    assert (work / "out" / "band_snr.mrc").is_file()
    assert main(_filter(work, "--no-report")) == 0
    assert {p.name for p in (work / "out").iterdir()} == SET
    assert inspect_output_set(work / "out").complete


def test_stale_temporary_files_are_removed_by_the_next_run(work: Path) -> None:
    out = work / "out"
    ours = [".filtered.mrc.k2j3h4.tmp", "..filtered_half1.mrc.abc.tmp.def.tmp", ".summary.json.x1.tmp",
            f".{MANIFEST_NAME}.q.tmp", ".report.pdf.zz.tmp"]
    theirs = [".notes.tmp", "data.tmp", ".other.mrc.abc.tmp"]
    for name in ours + theirs:
        (out / name).write_bytes(b"left by a killed run")
    assert main(_filter(work, "--no-report")) == 0
    assert temporaries(out) == sorted(theirs)  # locband's own removed, other files kept


def test_every_file_carries_the_run_id(work: Path) -> None:
    out = work / "out"
    assert {p.name for p in out.iterdir()} == SET | REPORT
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run_id"] == manifest["run_id"]
    assert set(manifest["files"]) == SET - {MANIFEST_NAME} | REPORT
    assert inspect_output_set(out).complete


@pytest.mark.parametrize("damage", ["replaced map", "no manifest", "report of another run", "missing file"])
def test_report_command_refuses_an_incomplete_folder(work: Path, capsys: pytest.CaptureFixture[str],
                                                     damage: str) -> None:
    out = work / "out"
    other = work / "other"
    assert main(_filter(work, "--criterion", "0.3", out=other)) == 0
    if damage == "replaced map":  # as a kill between two renames leaves it
        shutil.copy(other / "filtered_half1.mrc", out / "filtered_half1.mrc")
    elif damage == "no manifest":
        (out / MANIFEST_NAME).unlink()
    elif damage == "report of another run":
        shutil.copy(other / "summary.json", out / "summary.json")
    else:
        (out / "local_resolution.mrc").unlink()
    capsys.readouterr()
    before = digest(out)
    assert main(["report", str(out)]) == 1
    err = _err(capsys)
    assert err.startswith(f"locband report: error: output folder {str(out)!r} holds an incomplete set of outputs: ")
    assert err.endswith("run locband again to write a complete set")
    assert digest(out) == before
    assert not inspect_output_set(out).complete


def test_report_command_keeps_a_complete_set_complete(work: Path) -> None:
    out = work / "out"
    run_id = inspect_output_set(out).run_id
    for name in REPORT:
        (out / name).unlink()  # deleted by hand: redrawing them is what the command is for
    assert main(["report", str(out)]) == 0
    state = inspect_output_set(out)
    assert state.complete and state.run_id == run_id
    assert {p.name for p in out.iterdir()} == SET | REPORT


def test_failure_between_renames_is_reported_and_recognised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error of the operating system in the middle of the renames: one message, no temporary file, incomplete."""
    from locband.io.outputs import OutputFileError, OutputSet

    outs = OutputSet(tmp_path, owned=["a.txt", "b.txt"])
    outs.add("a.txt", lambda p: p.write_text("a"))
    outs.add("b.txt", lambda p: p.write_text("b"))
    outs.commit()
    real = os.replace
    calls: list[str] = []

    def flaky(src: str, dst: str) -> None:
        calls.append(Path(dst).name)
        if Path(dst).name == "b.txt":
            raise OSError(5, "Input/output error")
        real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    again = OutputSet(tmp_path, owned=["a.txt", "b.txt"])
    again.add("a.txt", lambda p: p.write_text("A"))
    again.add("b.txt", lambda p: p.write_text("B"))
    with pytest.raises(OutputFileError, match=r"cannot replace '.*b\.txt': Input/output error; '.*' now holds an "
                                              r"incomplete set \(no locband_manifest\.json\): run again"):
        again.commit()
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.txt"]  # no manifest, no temporary file
    assert not inspect_output_set(tmp_path).complete


# --------------------------------------------------------------------------------------------
# item 10: bad input creates no output folder
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["missing half-map", "shape mismatch"])
def test_bad_input_creates_no_output_folder(work: Path, capsys: pytest.CaptureFixture[str], bad: str) -> None:
    out = work / "new" / "out"
    if bad == "missing half-map":
        (work / "in" / "h2.mrc").unlink()
    else:
        from locband.io.mrc import read_map, write_map

        write_map(work / "in" / "h2.mrc", read_map(work / "in" / "h2.mrc").data[:, :, :30], pixel_size_angstrom=1.5)
    assert main(_filter(work, out=out)) == 1
    _err(capsys)
    assert not (work / "new").exists()


def test_relion_external_wrapper_with_a_python_without_numpy(tmp_path: Path) -> None:
    """LOCBAND_PYTHON without locband's dependencies: one line, exit 126, and the failure file for RELION."""
    fake = tmp_path / "bare-python"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -S -I \"$@\"\n")  # no site-packages: no numpy
    fake.chmod(0o755)
    job = tmp_path / "External" / "job003"
    job.mkdir(parents=True)
    wrapper = Path(__file__).resolve().parents[2] / "wrappers" / "locband-relion-external"
    proc = subprocess.run([str(wrapper), "--o", f"{job}/", "--in_3dref", "x_half1.mrc"],
                          env=env(LOCBAND_PYTHON=str(fake)), capture_output=True, text=True, timeout=GUARD_S)
    assert proc.returncode == 126
    line = one_line(proc.stderr)
    assert line.startswith("locband-relion-external: ") and "cannot run locband (No module named" in line, line
    assert (job / "RELION_JOB_EXIT_FAILURE").is_file()


@pytest.mark.parametrize("python", ["without numpy", "missing"])
def test_hook_wrapper_with_an_unusable_python(tmp_path: Path, python: str) -> None:
    if python == "missing":
        fake = tmp_path / "no-such-python"
    else:
        fake = tmp_path / "bare-python"
        fake.write_text(f"#!/bin/sh\nexec {sys.executable} -S -I \"$@\"\n")
        fake.chmod(0o755)
    wrapper = Path(__file__).resolve().parents[2] / "wrappers" / "locband-relion-reconstruct"
    proc = subprocess.run([str(wrapper), "run_it001_half1_class001_external_reconstruct.star"], cwd=tmp_path,
                          env=env(LOCBAND_PYTHON=str(fake)), capture_output=True, text=True, timeout=GUARD_S)
    assert proc.returncode == 1
    line = one_line(proc.stderr)
    assert line == (f"locband-relion-reconstruct: LOCBAND_PYTHON={fake} is not an executable Python"
                    if python == "missing" else line), line
    if python != "missing":
        assert "cannot run locband (No module named" in line
