import io
import os
import re

import mrcfile
import numpy as np
import pytest
from mrc_variants import set_header_int, write_big_endian, write_extended, write_permuted, write_standard

from locband.io import InputFileError, read_map, write_map
from locband.io.outputs import OutputSet


def _write_raw(path, data, voxel=1.5):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = voxel


@pytest.mark.parametrize("dtype,mode", [(np.int8, 0), (np.int16, 1), (np.float32, 2), (np.uint16, 6), (np.float16, 12)])
def test_supported_modes_read_as_float32(tmp_path, dtype, mode):
    data = (np.arange(4 * 5 * 6).reshape(4, 5, 6) % 100).astype(dtype)
    _write_raw(tmp_path / "m.mrc", data)
    with mrcfile.open(tmp_path / "m.mrc") as m:
        assert int(m.header.mode) == mode
    md = read_map(tmp_path / "m.mrc")
    assert md.data.dtype == np.float32 and md.data.shape == (4, 5, 6)
    np.testing.assert_array_equal(md.data, data.astype(np.float32))
    assert md.pixel_size_angstrom == pytest.approx(1.5)


def test_complex_mode_is_rejected_with_the_file_name(tmp_path):
    _write_raw(tmp_path / "c.mrc", np.ones((4, 4, 4), np.complex64))
    with pytest.raises(InputFileError, match=r"half-map 1 '.*c\.mrc' has MRC mode 4 \(complex float32\); "
                                             r"supported modes are 0, 1, 2, 6 and 12"):
        read_map(tmp_path / "c.mrc", what="half-map 1")


def test_truncated_missing_and_garbage_files(tmp_path):
    _write_raw(tmp_path / "t.mrc", np.ones((8, 8, 8), np.float32))
    raw = (tmp_path / "t.mrc").read_bytes()
    (tmp_path / "t.mrc").write_bytes(raw[:-100])
    with pytest.raises(InputFileError, match=r"mask '.*t\.mrc' is (truncated|not a readable MRC file)"):
        read_map(tmp_path / "t.mrc", what="mask")
    with pytest.raises(InputFileError, match=r"map '.*nothere\.mrc' does not exist"):
        read_map(tmp_path / "nothere.mrc")
    (tmp_path / "g.mrc").write_text("this is not a map\n" * 100)
    with pytest.raises(InputFileError, match=r"map '.*g\.mrc' is not a readable MRC file"):
        read_map(tmp_path / "g.mrc")
    with pytest.raises(InputFileError, match=r"is a folder, expected an MRC file"):
        read_map(tmp_path)


def test_write_map_round_trip_is_atomic(tmp_path, rng, monkeypatch):
    data = rng.standard_normal((6, 7, 8)).astype(np.float32)
    target = tmp_path / "out.mrc"
    write_map(target, data, pixel_size_angstrom=0.83, origin=(1.0, 2.0, 3.0))
    md = read_map(target)
    np.testing.assert_array_equal(md.data, data)
    assert md.pixel_size_angstrom == pytest.approx(0.83, rel=1e-6) and md.origin == (1.0, 2.0, 3.0)
    # a crash while writing keeps the old file and leaves no temporary file behind
    before = target.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(mrcfile, "new", boom)
    with pytest.raises(OSError, match="disk full"):
        write_map(target, data * 2, pixel_size_angstrom=1.0)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out.mrc"]


def test_output_set_is_all_or_nothing(tmp_path):
    outs = OutputSet(tmp_path)
    outs.add("a.txt", lambda p: p.write_text("a"))

    def fail(p):
        p.write_text("half")
        raise RuntimeError("crash in the middle")

    outs.add("b.txt", fail)
    with pytest.raises(RuntimeError):
        outs.commit()
    assert os.listdir(tmp_path) == []
    ok = OutputSet(tmp_path)
    ok.add("a.txt", lambda p: p.write_text("a"))
    ok.add("b.txt", lambda p: p.write_text("b"))
    assert [p.name for p in ok.commit()] == ["a.txt", "b.txt"]
    assert (tmp_path / "b.txt").read_text() == "b"


# -- header against data (issue 8, items 3 and 10) ---------------------------------------------

MODE_WORD, MAPC_WORD = 3, 16  # 32-bit header words: mode, then mapc, mapr, maps


def test_axis_order_is_honoured_on_a_map_whose_reading_is_spelled_out(tmp_path):
    # columns along z (mapc = 3), rows along x (mapr = 1), sections along y (maps = 2): the file
    # holds file[s, r, c] = value at (z = c, y = s, x = r); the value encodes its own position
    nz, ny, nx = 2, 4, 3
    file_array = np.zeros((ny, nx, nz), np.float32)  # (sections, rows, columns)
    for s in range(ny):
        for r in range(nx):
            for c in range(nz):
                file_array[s, r, c] = 100 * c + 10 * s + r  # 100 z + 10 y + x
    with mrcfile.new(tmp_path / "p.mrc") as m:
        m.set_data(file_array)
        m.header.mapc, m.header.mapr, m.header.maps = 3, 1, 2
    md = read_map(tmp_path / "p.mrc")
    assert md.data.shape == (nz, ny, nx)
    z, y, x = np.indices((nz, ny, nx))
    np.testing.assert_array_equal(md.data, 100 * z + 10 * y + x)
    assert md.data.flags.c_contiguous


@pytest.mark.parametrize("axes", [(1, 2, 3), (1, 3, 2), (2, 1, 3), (2, 3, 1), (3, 1, 2), (3, 2, 1)])
def test_every_axis_order_reads_as_z_y_x(tmp_path, rng, axes):
    vol = rng.standard_normal((5, 6, 7)).astype(np.float32)  # non-cubic: a wrong transpose shows in the shape
    md = read_map(write_permuted(tmp_path / "p.mrc", vol, axes, voxel=1.1))
    np.testing.assert_array_equal(md.data, vol)
    assert md.pixel_size_angstrom == pytest.approx(1.1, rel=1e-6)


@pytest.mark.parametrize("axes", [(1, 1, 3), (0, 0, 0), (1, 2, 4)])
def test_an_axis_order_that_is_not_a_permutation_is_refused(tmp_path, axes):
    path = write_standard(tmp_path / "a.mrc", np.ones((4, 4, 4), np.float32))
    for k, v in enumerate(axes):
        set_header_int(path, MAPC_WORD + k, v)
    with pytest.raises(InputFileError, match=rf"half-map 1 '.*a\.mrc' has axis order mapc, mapr, maps = "
                                             rf"{axes[0]}, {axes[1]}, {axes[2]} in its header: expected a "
                                             r"permutation of 1, 2, 3"):
        read_map(path, what="half-map 1")


@pytest.mark.parametrize("data_dtype,header_mode,problem,expected,found,fits", [
    # float32 data under a header that says int16: twice as long as the header implies
    (np.float32, 1, "is longer than its header says", 2 * 240, 4 * 240, "mode 2 \\(float32\\)"),
    # int16 data under a header that says float32: half as long
    (np.int16, 2, r"is truncated \(shorter than its header says\)", 4 * 240, 2 * 240,
     "mode 1 \\(int16\\) or mode 6 \\(uint16\\) or mode 12 \\(float16\\)"),
    # int8 data under a header that says uint16
    (np.int8, 6, r"is truncated \(shorter than its header says\)", 2 * 240, 240, "mode 0 \\(int8\\)"),
])
def test_a_header_mode_that_does_not_match_the_data_length_is_refused(tmp_path, data_dtype, header_mode, problem,
                                                                      expected, found, fits):
    path = write_standard(tmp_path / "m.mrc", np.arange(240).reshape(4, 6, 10).astype(data_dtype))
    set_header_int(path, MODE_WORD, header_mode)
    with pytest.raises(InputFileError) as err:
        read_map(path, what="half-map 2")
    msg = str(err.value)
    assert re.match(rf"half-map 2 '.*m\.mrc' {problem}: mode {header_mode} \(\w+\) and 10x6x4 voxels "
                    rf"\(columns, rows, sections\) make {expected} bytes of data, but {found} bytes follow the "
                    rf"1024-byte header and 0-byte extended header: the header's mode or dimensions do not match "
                    rf"the data; {found} bytes would fit {fits}$", msg), msg


def test_the_extended_header_counts_in_the_expected_length(tmp_path, rng):
    vol = rng.standard_normal((4, 5, 6)).astype(np.float32)
    path = write_extended(tmp_path / "e.mrc", vol, nbytes=1200)
    np.testing.assert_array_equal(read_map(path).data, vol)
    set_header_int(path, 23, 0)  # nsymbt = 0: the 1200 bytes now look like extra data
    with pytest.raises(InputFileError, match=r"is longer than its header says: .* make 480 bytes of data, but "
                                             r"1680 bytes follow the 1024-byte header and 0-byte extended header"):
        read_map(path)


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.float16])
def test_big_endian_files_read_right(tmp_path, rng, dtype):
    vol = (rng.standard_normal((4, 5, 6)) * 100).astype(dtype)
    path = write_big_endian(tmp_path / "b.mrc", vol, voxel=1.7)
    assert path.read_bytes()[212:214] == b"\x11\x11"  # big-endian machine stamp
    md = read_map(path)
    np.testing.assert_array_equal(md.data, vol.astype(np.float32))
    assert md.pixel_size_angstrom == pytest.approx(1.7, rel=1e-6)


@pytest.mark.parametrize("mode,name", [(3, " \\(complex int16\\)"), (4, " \\(complex float32\\)"), (5, ""),
                                       (101, " \\(4-bit\\)"), (-1, "")])
def test_unsupported_modes_are_named(tmp_path, mode, name):
    path = write_standard(tmp_path / "u.mrc", np.ones((4, 4, 4), np.float32))
    set_header_int(path, MODE_WORD, mode)
    with pytest.raises(InputFileError, match=rf"mask '.*u\.mrc' has MRC mode {mode}{name}; supported modes are "
                                             r"0, 1, 2, 6 and 12 \(real-valued maps\)$"):
        read_map(path, what="mask")


@pytest.mark.parametrize("content,message", [
    (b"", r"is not an MRC file: it holds 0 bytes, fewer than the 1024-byte MRC header"),
    (b"MAP " * 100, r"is not an MRC file: it holds 400 bytes, fewer than the 1024-byte MRC header"),
    (bytes(range(256)) * 40, r"is not a readable MRC file \(no 'MAP ' label in its header, and it has MRC mode"),
])
def test_files_that_are_not_mrc_are_refused(tmp_path, content, message):
    (tmp_path / "x.mrc").write_bytes(content)
    with pytest.raises(InputFileError, match=rf"map '.*x\.mrc' {message}"):
        read_map(tmp_path / "x.mrc")


def test_write_map_labels(tmp_path):
    import mrcfile

    vol = np.zeros((4, 4, 4), np.float32)
    write_map(tmp_path / "a.mrc", vol, pixel_size_angstrom=1.0, labels=("first label", "SECOND"))
    with mrcfile.open(tmp_path / "a.mrc") as m:
        assert m.get_labels()[-2:] == ["first label", "SECOND"]
    write_map(tmp_path / "c.mrc", vol, pixel_size_angstrom=1.0, labels=tuple("abcdefghi"))  # 9 + mrcfile's own
    for bad in (("x" * 81,), ("é",), tuple("abcdefghij")):
        with pytest.raises(ValueError, match="MRC labels must be"):
            write_map(tmp_path / "b.mrc", vol, pixel_size_angstrom=1.0, labels=bad)
    assert not (tmp_path / "b.mrc").exists()


def _mrcfile_reference(path, data, voxel):
    """The same map written by mrcfile alone (its own header from the data)."""
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(np.ascontiguousarray(data, dtype=np.float32))
        m.voxel_size = voxel


@pytest.mark.parametrize("kind", ["volume", "strided view", "stack", "image", "NaN"])
def test_write_map_writes_what_mrcfile_would(tmp_path, rng, monkeypatch, kind):
    """Slab-wise writing: same voxels and header as mrcfile's own, statistics included, for the
    engine's strided outputs (a view into a padded transform buffer) and volume stacks."""
    import locband.io.mrc as mrc_module

    monkeypatch.setattr(mrc_module, "_SLAB_BYTES", 3 * 7 * 4 * 2)  # 2 sections per slab: slabs split each volume
    if kind == "volume":
        data = rng.standard_normal((5, 7, 3)).astype(np.float32) + 2
    elif kind == "strided view":
        data = (rng.standard_normal((5, 7, 3 + 2)).astype(np.float32) + 2)[..., :3]
        assert not data.flags.c_contiguous
    elif kind == "stack":
        data = rng.standard_normal((4, 5, 7, 3)).astype(np.float32) + 2
    elif kind == "image":
        data = rng.standard_normal((7, 3)).astype(np.float32) + 2
    else:  # a NaN in one slab and the extremes in another: the header says NaN, as mrcfile's does
        data = rng.standard_normal((5, 7, 3)).astype(np.float32)
        data[1, 2, 2], data[3, 0, 0], data[4, 1, 1] = np.nan, -100.0, 100.0
    if kind == "NaN":
        with pytest.warns(RuntimeWarning, match="NaN"):  # mrcfile warns when its own file is written
            _mrcfile_reference(tmp_path / "ref.mrc", data, 1.3)
        write_map(tmp_path / "ours.mrc", data, pixel_size_angstrom=1.3)
        with mrcfile.open(tmp_path / "ours.mrc") as ours, mrcfile.open(tmp_path / "ref.mrc") as ref:
            np.testing.assert_array_equal(ours.data, ref.data)
            for field in ("dmin", "dmax", "dmean", "rms"):
                assert np.isnan(ours.header[field]) and np.isnan(ref.header[field]), field
        return
    write_map(tmp_path / "ours.mrc", data, pixel_size_angstrom=1.3)
    _mrcfile_reference(tmp_path / "ref.mrc", data, 1.3)
    assert mrcfile.validate(str(tmp_path / "ours.mrc"), print_file=io.StringIO())
    with mrcfile.open(tmp_path / "ours.mrc") as ours, mrcfile.open(tmp_path / "ref.mrc") as ref:
        np.testing.assert_array_equal(ours.data, ref.data)
        for field in ("nx", "ny", "nz", "mx", "my", "mz", "mode", "ispg", "cella", "mapc", "mapr", "maps", "dmin",
                      "dmax"):
            assert ours.header[field] == ref.header[field], field
        # mean and rms: float64 sums here, float32 in mrcfile; both round to float32 in the header
        # (relative 6e-8), and mrcfile's float32 sum of 420 voxels adds at most ~1e-6
        for field in ("dmean", "rms"):
            assert float(ours.header[field]) == pytest.approx(float(ref.header[field]), rel=2e-6), field
        assert float(ours.header.rms) == pytest.approx(float(np.asarray(data, np.float64).std()), rel=1e-6)
        assert ours.data.size == np.asarray(data).size  # no stand-in voxel left behind


def test_write_map_adds_only_a_slab_of_memory(tmp_path, monkeypatch):
    """The outputs of a 512^3 run are ~0.5 GiB each: writing one must not copy it (as a contiguous
    copy or a temporary for the header's statistics)."""
    import tracemalloc

    import locband.io.mrc as mrc_module

    slab = 64 << 10
    monkeypatch.setattr(mrc_module, "_SLAB_BYTES", slab)
    buf = np.ones((64, 64, 66), np.float32)
    view = buf[..., :64]  # 1 MiB of voxels, strided as the engine's outputs are
    tracemalloc.start()
    try:
        write_map(tmp_path / "v.mrc", view, pixel_size_angstrom=1.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # a slab in float64 (2 slabs), a contiguous float32 copy of one (1 slab) and a float64 partial
    # sum, plus mrcfile's header and the file's buffers (measured 4.2 slabs); a full copy of the
    # volume would be 16 slabs more
    assert peak < 5 * slab, peak
    np.testing.assert_array_equal(read_map(tmp_path / "v.mrc").data, view)


def test_a_failure_while_the_voxels_are_written_keeps_the_old_file(tmp_path, monkeypatch, rng):
    import locband.io.mrc as mrc_module

    target = tmp_path / "out.mrc"
    write_map(target, rng.standard_normal((6, 7, 8)).astype(np.float32), pixel_size_angstrom=1.0)
    before = target.read_bytes()
    real_slabs = mrc_module._slabs
    calls = []

    def failing_slabs(arr):
        slabs = real_slabs(arr)

        def gen():
            calls.append(1)
            for i, s in enumerate(slabs()):
                if len(calls) == 3 and i == 1:  # the third pass writes the voxels: fail after the first slab
                    raise OSError("No space left on device")
                yield s
        return gen

    monkeypatch.setattr(mrc_module, "_SLAB_BYTES", 7 * 8 * 4)
    monkeypatch.setattr(mrc_module, "_slabs", failing_slabs)
    with pytest.raises(OSError, match="No space left"):
        write_map(target, np.zeros((6, 7, 8), np.float32), pixel_size_angstrom=1.0)
    assert len(calls) == 3
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out.mrc"]


@pytest.mark.parametrize("axes", [(1, 2, 3), (3, 1, 2), (2, 3, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_central_slices_are_those_of_the_whole_map(tmp_path, rng, axes, dtype):
    """The report's input sections, read alone, equal the whole map's, whatever the axis order and mode."""
    from locband.io.mrc import read_central_slices

    vol = (rng.standard_normal((5, 6, 7)) * 100).astype(dtype)  # non-cubic, odd and even sizes
    path = write_permuted(tmp_path / "p.mrc", vol, axes)
    xy, xz = read_central_slices(path, what="half-map 1")
    whole = read_map(path).data
    np.testing.assert_array_equal(xy, whole[5 // 2])
    np.testing.assert_array_equal(xz, whole[:, 6 // 2, :])
    assert xy.dtype == xz.dtype == np.float32


def test_central_slices_refuse_what_read_map_refuses(tmp_path):
    from locband.io.mrc import read_central_slices

    bad = tmp_path / "bad.mrc"
    bad.write_bytes(b"not a map" * 200)
    with pytest.raises(InputFileError, match=r"half-map 2 '.*bad\.mrc' is not a readable MRC file"):
        read_central_slices(bad, what="half-map 2")
    with pytest.raises(InputFileError, match="half-map 2 .* does not exist"):
        read_central_slices(tmp_path / "missing.mrc", what="half-map 2")
