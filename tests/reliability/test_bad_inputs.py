"""The bad-input matrix of issue 8 as a suite: `locband filter` on every kind of unusable input.

Every refused case must end with exit code 1 and ONE line on stderr that names the file (or
option) and what was wrong, no traceback; the input files must be byte-identical afterwards
and no output may be written (the output folder stays empty or absent: that it is created
empty at all is issue 8, item 10, fixed with the output side).

Every accepted case (the MRC variants other programs write) must give exactly the result of
the same voxel values written as a plain float32 file: the values were read right.

Most cases call ``locband.cli.main`` in-process (fast); ``test_*_in_a_real_process`` runs a
few of each kind through ``python -m locband.cli`` to check what a shell user sees.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from mrc_variants import set_header_int, write_big_endian, write_extended, write_permuted, write_standard

from locband.cli import main
from locband.engine.synthetic import synthetic_pair

PX = 1.4
N = 32  # 32^3 float32: 131072 bytes of data
MODE_WORD, NX_WORD, MAPC_WORD = 3, 0, 16  # 32-bit header words
PLUGIN = Path(__file__).resolve().parents[2] / "plugin"


# -- the inputs -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pair():
    return synthetic_pair((N, N, N), noise_std=0.5, seed=1)


@pytest.fixture
def ins(tmp_path, pair) -> Path:
    """``in/`` with h1.mrc, h2.mrc and mask.mrc (a good pair, voxel 1.4 Å)."""
    d = tmp_path / "in"
    d.mkdir()
    for name, vol in (("h1", pair.half1), ("h2", pair.half2), ("mask", pair.mask)):
        write_standard(d / f"{name}.mrc", vol, voxel=PX)
    return d


def _digest(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` with the SHA-256 of each file's bytes ('dir' for folders)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), folder)] = "dir"
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


def _read(path: Path) -> np.ndarray:
    return mrcfile.read(path).astype(np.float32)


# -- refused cases ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Bad:
    """One refused case: ``setup(in_dir)`` returns the arguments after ``filter``."""

    setup: Callable[[Path], list[str]]
    message: str  # regex that the one line must contain
    names: tuple[str, ...]  # file names (or options) the line must name


def _std(d: Path, h1: str = "h1.mrc", h2: str = "h2.mrc", mask: str | None = "mask.mrc") -> list[str]:
    return [str(d / h1), str(d / h2)] + (["--mask", str(d / mask)] if mask else [])


def _rewrite(path: Path, change: Callable[[np.ndarray], np.ndarray], voxel: float = PX) -> None:
    write_standard(path, change(_read(path)), voxel=voxel)


def _patch(name: str, word: int, value: int) -> Callable[[Path], list[str]]:
    def setup(d: Path) -> list[str]:
        set_header_int(d / name, word, value)
        return _std(d)
    return setup


def _with(name: str, action: Callable[[Path], object]) -> Callable[[Path], list[str]]:
    def setup(d: Path) -> list[str]:
        action(d / name)
        return _std(d)
    return setup


def _nan(path: Path) -> None:
    data = _read(path)
    data[3, 4, 5] = np.nan
    with pytest.warns(RuntimeWarning, match="NaN"):  # mrcfile warns when it writes one
        write_standard(path, data, voxel=PX)


def _mkdir_instead(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "inside.txt").write_text("a folder named like a map\n")


def _small(d: Path) -> list[str]:
    for name in ("h1", "h2"):
        write_standard(d / f"{name}.mrc", np.random.default_rng(len(name)).standard_normal((6, 6, 6)).astype(
            np.float32), voxel=PX)
    return _std(d, mask=None)


def _as_int16_under_mode_2(path: Path) -> None:
    write_standard(path, np.round(_read(path) * 1000).astype(np.int16), voxel=PX)
    set_header_int(path, MODE_WORD, 2)


def _scaled_both(factor: float) -> Callable[[Path], list[str]]:
    def setup(d: Path) -> list[str]:
        for name in ("h1.mrc", "h2.mrc"):
            with np.errstate(over="ignore"):  # mrcfile's header rms of 1e30 values overflows float32
                _rewrite(d / name, lambda a: a * np.float32(factor))
        return _std(d)
    return setup


def _inf(path: Path) -> None:
    # mrcfile warns when it writes one, and its header rms subtracts inf from inf
    with pytest.warns(RuntimeWarning, match="infinite"), np.errstate(invalid="ignore"):
        _rewrite(path, lambda a: np.where(np.abs(a) > 2.5, np.inf, a).astype(np.float32))


F = r"'[^']*{}'"  # a quoted path ending in the file name
FLOAT_BYTES, INT16_BYTES = 4 * N ** 3, 2 * N ** 3
BAD: dict[str, Bad] = {
    # two half-maps that do not fit together
    "shape": Bad(_with("h2.mrc", lambda p: _rewrite(p, lambda a: a[..., :30])),
                 r"half-maps differ in shape: .*h1\.mrc is \(32, 32, 32\) \(z, y, x\) but .*h2\.mrc is \(32, 32, 30\)",
                 ("h1.mrc", "h2.mrc")),
    "voxel_size": Bad(_with("h2.mrc", lambda p: _rewrite(p, lambda a: a, voxel=1.5)),
                      r"half-maps differ in voxel size: .*h1\.mrc says 1\.4000 Å, .*h2\.mrc says 1\.5000 Å",
                      ("h1.mrc", "h2.mrc")),
    "voxel_size_0": Bad(_with("h1.mrc", lambda p: _rewrite(p, lambda a: a, voxel=0.0)),
                        r"half-map 1 " + F.format(r"h1\.mrc") + r" has voxel size 0 in its header: give the voxel "
                        r"size with --pixel-size", ("h1.mrc",)),
    "too_small": Bad(_small, r"half-maps .*h1\.mrc' and .*h2\.mrc' are \(6, 6, 6\) voxels \(z, y, x\): locband needs "
                             r"at least 8 along every axis", ("h1.mrc", "h2.mrc")),
    # values
    "nan": Bad(_with("h2.mrc", _nan), r"half-map 2 " + F.format(r"h2\.mrc") + r" has 1 non-finite \(NaN or "
                                      r"infinite\) voxels", ("h2.mrc",)),
    "inf": Bad(_with("h1.mrc", _inf),
               r"half-map 1 " + F.format(r"h1\.mrc") + r" has \d+ non-finite \(NaN or infinite\) voxels", ("h1.mrc",)),
    "constant": Bad(_with("h2.mrc", lambda p: _rewrite(p, lambda a: np.full_like(a, 2.5))),
                    r"half-map 2 " + F.format(r"h2\.mrc") + r" is constant \(every voxel 2\.5\): expected a "
                    r"reconstruction", ("h2.mrc",)),
    "all_zero": Bad(_with("h1.mrc", lambda p: _rewrite(p, np.zeros_like)),
                    r"half-map 1 " + F.format(r"h1\.mrc") + r" is constant \(every voxel 0\.0\)", ("h1.mrc",)),
    "values_beyond_float32_range": Bad(_scaled_both(1e30), r"half-maps .*h1\.mrc' and .*h2\.mrc': half1 and half2 "
                                       r"values spread \S+ about their means: expected between 1e-25 and 1e\+25",
                                       ("h1.mrc", "h2.mrc")),
    # two halves that cannot be independent reconstructions of one structure
    "same_file_twice": Bad(lambda d: _std(d, h2="h1.mrc"), r"half-maps .*h1\.mrc' and .*h1\.mrc': half1 and half2 "
                           r"are identical or nearly so: 1 - FSC averages", ("h1.mrc",)),
    "identical_copy": Bad(_with("h2.mrc", lambda p: p.write_bytes((p.parent / "h1.mrc").read_bytes())),
                          r"half-maps .*h1\.mrc' and .*h2\.mrc': half1 and half2 are identical or nearly so",
                          ("h1.mrc", "h2.mrc")),
    "scaled_copy": Bad(_with("h2.mrc", lambda p: write_standard(p, _read(p.parent / "h1.mrc") * 3, voxel=PX)),
                       r"half1 and half2 are identical or nearly so: .* must come from two separate halves of the data",
                       ("h1.mrc", "h2.mrc")),
    "inverted_contrast": Bad(_with("h2.mrc", lambda p: _rewrite(p, np.negative)),
                             r"half-maps .*h1\.mrc' and .*h2\.mrc': half1 and half2 are anti-correlated at low "
                             r"resolution: mean FSC -0\.\d\d .* one half may have inverted contrast",
                             ("h1.mrc", "h2.mrc")),
    # files that are not (usable) MRC maps
    **{f"mode_{m}": Bad(_patch("h2.mrc", MODE_WORD, m), r"half-map 2 " + F.format(r"h2\.mrc") + rf" has MRC mode {m}"
                        r"( \([\w -]+\))?; supported modes are 0, 1, 2, 6 and 12 \(real-valued maps\)", ("h2.mrc",))
       for m in (3, 4, 5, 101)},
    "mode_says_int16_data_is_float32": Bad(
        _patch("h2.mrc", MODE_WORD, 1),
        r"half-map 2 " + F.format(r"h2\.mrc") + rf" is longer than its header says: mode 1 \(int16\) and 32x32x32 "
        rf"voxels \(columns, rows, sections\) make {INT16_BYTES} bytes of data, but {FLOAT_BYTES} bytes follow",
        ("h2.mrc",)),
    "mode_says_float32_data_is_int16": Bad(
        _with("h2.mrc", _as_int16_under_mode_2),
        r"half-map 2 " + F.format(r"h2\.mrc") + rf" is truncated \(shorter than its header says\): mode 2 \(float32\) "
        rf"and 32x32x32 voxels \(columns, rows, sections\) make {FLOAT_BYTES} bytes of data, but {INT16_BYTES} bytes "
        r"follow", ("h2.mrc",)),
    "truncated": Bad(_with("h2.mrc", lambda p: p.write_bytes(p.read_bytes()[:-4096])),
                     r"half-map 2 " + F.format(r"h2\.mrc") + rf" is truncated \(shorter than its header says\): .* "
                     rf"make {FLOAT_BYTES} bytes of data, but {FLOAT_BYTES - 4096} bytes follow", ("h2.mrc",)),
    "header_only": Bad(_with("h1.mrc", lambda p: p.write_bytes(p.read_bytes()[:1024])),
                       r"half-map 1 " + F.format(r"h1\.mrc") + r" is truncated .* but 0 bytes follow", ("h1.mrc",)),
    "trailing_bytes": Bad(_with("h1.mrc", lambda p: p.write_bytes(p.read_bytes() + bytes(512))),
                          r"half-map 1 " + F.format(r"h1\.mrc") + rf" is longer than its header says: .* but "
                          rf"{FLOAT_BYTES + 512} bytes follow", ("h1.mrc",)),
    "zero_dimension": Bad(_patch("h1.mrc", NX_WORD, 0), r"half-map 1 " + F.format(r"h1\.mrc") + r" has an invalid "
                          r"header: 0x32x32 voxels", ("h1.mrc",)),
    "axis_order_not_a_permutation": Bad(_patch("h2.mrc", MAPC_WORD + 1, 1), r"half-map 2 " + F.format(r"h2\.mrc") +
                                        r" has axis order mapc, mapr, maps = 1, 1, 3 in its header: expected a "
                                        r"permutation of 1, 2, 3", ("h2.mrc",)),
    "image_not_volume": Bad(_with("h2.mrc", lambda p: write_standard(p, np.ones((N, N), np.float32) + np.eye(N,
                            dtype=np.float32), voxel=PX)),
                            r"half-map 2 " + F.format(r"h2\.mrc") + r" must be a 3-D volume, got shape \(32, 32\)",
                            ("h2.mrc",)),
    "text_file": Bad(_with("h2.mrc", lambda p: p.write_text("not a map\n" * 200)),
                     r"half-map 2 " + F.format(r"h2\.mrc") + r" is not a readable MRC file \(no 'MAP ' label in its "
                     r"header", ("h2.mrc",)),
    "short_file": Bad(_with("h1.mrc", lambda p: p.write_bytes(b"\x89PNG\r\n" + bytes(90))),
                      r"half-map 1 " + F.format(r"h1\.mrc") + r" is not an MRC file: it holds 96 bytes, fewer than "
                      r"the 1024-byte MRC header", ("h1.mrc",)),
    "empty_file": Bad(_with("h2.mrc", lambda p: p.write_bytes(b"")),
                      r"half-map 2 " + F.format(r"h2\.mrc") + r" is not an MRC file: it holds 0 bytes", ("h2.mrc",)),
    "directory": Bad(_with("h2.mrc", _mkdir_instead), r"half-map 2 " + F.format(r"h2\.mrc") + r" is a folder, "
                     r"expected an MRC file", ("h2.mrc",)),
    "missing": Bad(_with("h2.mrc", Path.unlink), r"half-map 2 " + F.format(r"h2\.mrc") + r" does not exist",
                   ("h2.mrc",)),
    "missing_half1": Bad(lambda d: _std(d, h1="nothere.mrc"), r"half-map 1 " + F.format(r"nothere\.mrc") +
                         r" does not exist", ("nothere.mrc",)),
    # the mask
    "mask_shape": Bad(_with("mask.mrc", lambda p: write_standard(p, np.ones((16, 16, 16), np.float32), voxel=PX)),
                      r"mask " + F.format(r"mask\.mrc") + r" has shape \(16, 16, 16\) but the half-maps are "
                      r"\(32, 32, 32\)", ("mask.mrc",)),
    "mask_above_1": Bad(_with("mask.mrc", lambda p: _rewrite(p, lambda a: np.where(a > 0.5, 2.0, 0.0).astype(
                        np.float32))), r"mask " + F.format(r"mask\.mrc") + r" must hold values in \[0, 1\], found min "
                        r"0 and max 2", ("mask.mrc",)),
    "mask_negative": Bad(_with("mask.mrc", lambda p: _rewrite(p, lambda a: a - np.float32(0.5))),
                         r"mask " + F.format(r"mask\.mrc") + r" must hold values in \[0, 1\], found min -0\.5",
                         ("mask.mrc",)),
    "mask_all_zero": Bad(_with("mask.mrc", lambda p: _rewrite(p, np.zeros_like)),
                         r"mask " + F.format(r"mask\.mrc") + r" is all zero", ("mask.mrc",)),
    "mask_nan": Bad(_with("mask.mrc", _nan), r"mask " + F.format(r"mask\.mrc") + r" has 1 non-finite \(NaN or "
                    r"infinite\) voxels: expected values in \[0, 1\]", ("mask.mrc",)),
    "mask_voxel_size": Bad(_with("mask.mrc", lambda p: _rewrite(p, lambda a: a, voxel=2.0)),
                           r"mask " + F.format(r"mask\.mrc") + r" has voxel size 2\.0000 Å but the half-maps have "
                           r"1\.4000 Å", ("mask.mrc",)),
    "mask_mode_4": Bad(_patch("mask.mrc", MODE_WORD, 4), r"mask " + F.format(r"mask\.mrc") + r" has MRC mode 4 "
                       r"\(complex float32\)", ("mask.mrc",)),
    "mask_truncated": Bad(_with("mask.mrc", lambda p: p.write_bytes(p.read_bytes()[:-1])),
                          r"mask " + F.format(r"mask\.mrc") + r" is truncated", ("mask.mrc",)),
    "mask_missing": Bad(_with("mask.mrc", Path.unlink), r"mask " + F.format(r"mask\.mrc") + r" does not exist",
                        ("mask.mrc",)),
    "mask_directory": Bad(_with("mask.mrc", _mkdir_instead), r"mask " + F.format(r"mask\.mrc") + r" is a folder",
                          ("mask.mrc",)),
    # options
    "pixel_size_0": Bad(lambda d: _std(d) + ["--pixel-size", "0"], r"--pixel-size must be > 0 Å, got 0\.0",
                        ("--pixel-size",)),
    "pixel_size_nan": Bad(lambda d: _std(d) + ["--pixel-size", "nan"], r"--pixel-size must be > 0 Å, got nan",
                          ("--pixel-size",)),
}


PROGRESS = re.compile(r"^\[ *\d+\.\d+ s\] +\d+\.\d% ")  # a progress line in a log (without --quiet)


def _check_refused(rc: int, err: str, case: Bad, before: dict[str, str], ins: Path, out: Path) -> None:
    assert rc == 1, err
    lines = err.strip().splitlines()
    assert all(PROGRESS.match(line) for line in lines[:-1]), err  # progress, if any, then the one line
    err = lines[-1]
    assert err.startswith("locband filter: error: ") and "Traceback" not in err, err
    assert re.search(case.message, err), err
    for name in case.names:
        assert name in err, (name, err)
    assert _digest(ins) == before, "an input changed"
    # nothing written; the folder itself is still created first on main (issue 8, item 10)
    assert not out.exists() or not any(out.iterdir()), sorted(os.listdir(out))


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_refused_with_one_line(ins, tmp_path, capsys, name):
    case = BAD[name]
    argv = case.setup(ins)
    before = _digest(ins)
    out = tmp_path / "out"
    rc = main(["filter", *argv, "--out-dir", str(out), "--quiet", "--no-report"])
    _check_refused(rc, capsys.readouterr().err, case, before, ins, out)


REAL_PROCESS = ["mode_says_int16_data_is_float32", "inverted_contrast", "same_file_twice", "directory", "text_file",
                "mask_above_1"]


def _run_process(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGIN), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "locband.cli", "filter", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", REAL_PROCESS)
def test_bad_input_is_refused_with_one_line_in_a_real_process(ins, tmp_path, name):
    case = BAD[name]
    argv = case.setup(ins)
    before = _digest(ins)
    out = tmp_path / "out"
    proc = _run_process([*argv, "--out-dir", str(out), "--no-report"], tmp_path)
    _check_refused(proc.returncode, proc.stderr, case, before, ins, out)
    assert proc.stdout == ""


# -- accepted variants: read right ------------------------------------------------------------
def _ints(scale: float, offset: float, dtype: type) -> Callable[[np.ndarray], np.ndarray]:
    info = np.iinfo(dtype)
    return lambda a: np.clip(np.round(a * scale + offset), info.min, info.max).astype(dtype)



GOOD: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[Path, np.ndarray], object]]] = {
    # name: (the voxel values the file holds, how it is written)
    "mode_0_int8": (_ints(40, 0, np.int8), lambda p, v: write_standard(p, v, voxel=PX)),
    "mode_1_int16": (_ints(3000, 0, np.int16), lambda p, v: write_standard(p, v, voxel=PX)),
    "mode_2_float32": (lambda a: a, lambda p, v: write_standard(p, v, voxel=PX)),
    "mode_6_uint16_with_offset": (_ints(3000, 30000, np.uint16), lambda p, v: write_standard(p, v, voxel=PX)),
    "mode_12_float16": (lambda a: a.astype(np.float16), lambda p, v: write_standard(p, v, voxel=PX)),
    "big_endian_float32": (lambda a: a, lambda p, v: write_big_endian(p, v, voxel=PX)),
    "big_endian_int16": (_ints(3000, 0, np.int16), lambda p, v: write_big_endian(p, v, voxel=PX)),
    "extended_header": (lambda a: a, lambda p, v: write_extended(p, v, nbytes=2048, voxel=PX)),
    "axis_order_3_1_2": (lambda a: a, lambda p, v: write_permuted(p, v, (3, 1, 2), voxel=PX)),
    "axis_order_2_3_1": (lambda a: a, lambda p, v: write_permuted(p, v, (2, 3, 1), voxel=PX)),
}


def _outputs(out: Path) -> dict[str, object]:
    found: dict[str, object] = {n: _read(out / n) for n in os.listdir(out) if n.endswith(".mrc")}
    summary = json.loads((out / "summary.json").read_text())
    for key in ("inputs", "outputs", "timings_seconds", "run_id"):  # run_id: unique per run by design
        summary.pop(key)
    found["summary"] = summary
    return found


@pytest.mark.parametrize("name", list(GOOD))
def test_mrc_variants_are_accepted_and_read_right(tmp_path, pair, name):
    values, write = GOOD[name]
    plain, variant = tmp_path / "plain", tmp_path / "variant"
    plain.mkdir()
    variant.mkdir()
    for h, half in (("h1", pair.half1), ("h2", pair.half2)):
        v = values(half)
        write_standard(plain / f"{h}.mrc", v.astype(np.float32), voxel=PX)  # the same values, plain float32
        write(variant / f"{h}.mrc", v)
    before = _digest(variant)
    results = []
    for folder in (plain, variant):
        rc = main(["filter", str(folder / "h1.mrc"), str(folder / "h2.mrc"), "--out-dir", str(folder / "out"),
                   "--quiet", "--no-report"])
        assert rc == 0
        results.append(_outputs(folder / "out"))
    assert _digest(variant) == {**before, **{k: v for k, v in _digest(variant).items() if k.startswith("out")}}
    ref, got = results
    assert set(got) == set(ref) and {"filtered.mrc", "local_resolution.mrc", "summary"} <= set(got)
    for key in ref:
        if key == "summary":
            assert got[key] == ref[key]
        else:
            np.testing.assert_array_equal(got[key], ref[key], err_msg=key)


def test_an_accepted_variant_in_a_real_process(tmp_path, pair):
    for h, half in (("h1", pair.half1), ("h2", pair.half2)):
        write_permuted(tmp_path / f"{h}.mrc", half, (3, 2, 1), voxel=PX)
    proc = _run_process([str(tmp_path / "h1.mrc"), str(tmp_path / "h2.mrc"), "--out-dir", str(tmp_path / "out"),
                         "--quiet", "--no-report"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("locband filter: wrote ") and proc.stderr == ""
    assert (tmp_path / "out" / "filtered.mrc").is_file()


@pytest.mark.parametrize("noise", ["0.001", "0.01"])
def test_the_demo_at_low_noise_is_not_taken_for_identical_halves(tmp_path, capsys, noise):
    # FSC 0.93 (0.001) and 0.1 (0.01) at Nyquist: a higher SNR than any real reconstruction
    rc = main(["demo", "--box", "32", "--noise", noise, "--out-dir", str(tmp_path / "demo"), "--quiet", "--no-report"])
    assert rc == 0, capsys.readouterr().err
    assert (tmp_path / "demo" / "filtered.mrc").is_file()
