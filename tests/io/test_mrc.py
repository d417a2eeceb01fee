import os

import mrcfile
import numpy as np
import pytest

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
    with pytest.raises(InputFileError, match=r"half-map 1 '.*c\.mrc' has MRC mode 4; supported modes are 0, 1, 2, 6 and 12"):
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
