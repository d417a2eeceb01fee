"""Reading the files relion_refine writes around --external_reconstruct (3.1 and 4.0/5.0 labels)."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest
from relion_hook_files import write_external_reconstruct_inputs

from locband.errors import InputFileError
from locband.io.relion_metadata import read_job_options, read_optimiser_general, read_sampling_symmetry
from locband.io.relion_star import parse_hook_name, read_external_reconstruct_star, read_fourier_sums

N, PAD = 16, 2.0
P = 32

# Text exactly as RELION 3.1.3 writes it (MetaDataTable::write of a list and a loop block).
STAR_31 = """
# version 30001

data_external_reconstruct_general

_rlnExtReconsDataReal                 {root}_external_reconstruct_data_real.mrc
_rlnExtReconsDataImag                 {root}_external_reconstruct_data_imag.mrc
_rlnExtReconsWeight                   {root}_external_reconstruct_weight.mrc
_rlnExtReconsResult                   {root}_external_reconstruct.mrc
_rlnExtReconsResultStarfile           {root}_external_reconstruct_out.star
_rlnTau2FudgeFactor                       1.000000
_rlnPaddingFactor                         2.000000
_rlnReferenceDimensionality                      3
_rlnOriginalImageSize                           16
_rlnCurrentImageSize                            12
{extra}

# version 30001

data_external_reconstruct_tau2

loop_
_rlnSpectralIndex #1
_rlnReferenceTau2 #2
_rlnGoldStandardFsc #3
{rows}
"""


def _rows(n_rows: int = N // 2 + 1) -> str:
    return "\n".join(f"{i:12d} {0.5 / (i + 1):12.6e} {max(0.0, 1 - i / 8):12.6f}" for i in range(n_rows))


def _write(tmp_path: Path, *, extra: str = "", rows: str | None = None, arrays: bool = True,
           shape: tuple[int, ...] = (P, P, P // 2 + 1), name: str = "run_it004_half1_class001") -> Path:
    root = str(tmp_path / name)
    star = Path(f"{root}_external_reconstruct.star")
    star.write_text(STAR_31.format(root=root, extra=extra, rows=_rows() if rows is None else rows))
    if arrays:
        rng = np.random.default_rng(0)
        for part in ("data_real", "data_imag", "weight"):
            with mrcfile.new(f"{root}_external_reconstruct_{part}.mrc", overwrite=True) as m:
                m.set_data(np.abs(rng.standard_normal(shape)).astype(np.float32))
                m.voxel_size = 0.0
    return star


def test_reads_relion_31_labels(tmp_path: Path) -> None:
    s = read_external_reconstruct_star(_write(tmp_path))
    assert (s.ori_size, s.current_size, s.ref_dim, s.padding_factor, s.tau2_fudge) == (16, 12, 3, 2.0, 1.0)
    assert s.padded_size == P
    assert s.result.endswith("run_it004_half1_class001_external_reconstruct.mrc")
    assert s.result_star.endswith("_external_reconstruct_out.star")
    assert s.pixel_size_angstrom is None and s.particle_diameter_angstrom is None
    assert s.tau2.shape == (9,) and s.tau2[1] == pytest.approx(0.25)
    assert s.fsc[0] == 1.0 and s.fsc[8] == 0.0


def test_reads_relion_40_additions(tmp_path: Path) -> None:
    extra = "_rlnPixelSize                             2.500000\n_rlnParticleDiameter                    120.000000"
    s = read_external_reconstruct_star(_write(tmp_path, extra=extra))
    assert s.pixel_size_angstrom == 2.5
    assert s.particle_diameter_angstrom == 120.0


def test_writer_round_trips(tmp_path: Path) -> None:
    data = (np.arange(P * P * (P // 2 + 1)).reshape(P, P, P // 2 + 1) * (1 + 2j)).astype(np.complex64)
    weight = np.ones(data.shape, np.float32)
    star = write_external_reconstruct_inputs(tmp_path / "run_it002_half2_class001", data, weight,
                                             tau2=np.ones(9), fsc=np.linspace(1, 0, 9), ori_size=N,
                                             current_size=N, pixel_size_angstrom=1.5)
    s = read_external_reconstruct_star(star)
    assert s.pixel_size_angstrom == 1.5
    d, w = read_fourier_sums(s)
    np.testing.assert_array_equal(d, data)
    np.testing.assert_array_equal(w, weight)
    with mrcfile.open(s.weight) as m:
        assert float(m.voxel_size.x) == 0.0  # as RELION writes it


@pytest.mark.parametrize(("name", "expected"), [
    ("Refine3D/job012/run_it004_half1_class001_external_reconstruct.star",
     ("Refine3D/job012/run", 4, 1, "class", 1, "run_it004_class001")),
    ("Refine3D/job012/run_it004_half2_class001_external_reconstruct.star",
     ("Refine3D/job012/run", 4, 2, "class", 1, "run_it004_class001")),
    ("Refine3D/job012/run_it017_class001_external_reconstruct.star",
     ("Refine3D/job012/run", 17, None, "class", 1, "run_it017_class001")),
    ("Class3D/job003/run_it025_class004_external_reconstruct.star",
     ("Class3D/job003/run", 25, None, "class", 4, "run_it025_class004")),
    ("MultiBody/job020/run_it003_half2_body002_external_reconstruct.star",
     ("MultiBody/job020/run", 3, 2, "body", 2, "run_it003_body002")),
])
def test_hook_name(name: str, expected: tuple) -> None:
    h = parse_hook_name(name)
    assert (h.out_root, h.iteration, h.half, h.kind, h.index, h.pair_key) == expected


@pytest.mark.parametrize("name", ["run_it004_half1_class001.star", "run_half1_class001_external_reconstruct.star",
                                  "run_it004_half3_class001_external_reconstruct.star"])
def test_bad_hook_name(name: str) -> None:
    with pytest.raises(InputFileError, match="expected a name"):
        parse_hook_name(name)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"extra": "_rlnSomethingNew 3"}, r"unknown label\(s\) _rlnSomethingNew"),
    ({"rows": _rows(5)}, r"must list shells 0\.\.8 \(ori_size 16 // 2 \+ 1 = 9 rows\), found 5 rows"),
    ({"rows": _rows().replace(f"{0.5:12.6e}", "-1.0e+00", 1)},
     r"_rlnReferenceTau2 must be finite and >= 0"),
])
def test_bad_star_content(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(InputFileError, match=match):
        read_external_reconstruct_star(_write(tmp_path, **kwargs))


def test_missing_label(tmp_path: Path) -> None:
    star = _write(tmp_path)
    star.write_text("\n".join(line for line in star.read_text().splitlines() if "rlnCurrentImageSize" not in line))
    with pytest.raises(InputFileError, match=r"missing label\(s\) _rlnCurrentImageSize"):
        read_external_reconstruct_star(star)


def test_missing_block(tmp_path: Path) -> None:
    star = _write(tmp_path)
    star.write_text(star.read_text().split("# version 30001\n\ndata_external_reconstruct_tau2")[0])
    with pytest.raises(InputFileError, match=r"must contain the blocks data_external_reconstruct_general and "
                                             r"data_external_reconstruct_tau2"):
        read_external_reconstruct_star(star)


def test_missing_star(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"external-reconstruct STAR file .*nope.star' does not exist"):
        read_external_reconstruct_star(tmp_path / "nope.star")


def test_non_numeric_size(tmp_path: Path) -> None:
    star = _write(tmp_path)
    star.write_text(star.read_text().replace("_rlnOriginalImageSize                           16",
                                             "_rlnOriginalImageSize big"))
    with pytest.raises(InputFileError, match=r"_rlnOriginalImageSize must be an integer >= 8, got 'big'"):
        read_external_reconstruct_star(star)


def test_array_shape_disagrees_with_star(tmp_path: Path) -> None:
    s = read_external_reconstruct_star(_write(tmp_path, shape=(P, P, P)))
    with pytest.raises(InputFileError, match=r"has shape \(32, 32, 32\) \(z, y, x\), but .* implies \(32, 32, 17\)"):
        read_fourier_sums(s)


def test_missing_array(tmp_path: Path) -> None:
    s = read_external_reconstruct_star(_write(tmp_path, arrays=False))
    with pytest.raises(InputFileError, match=r"data \(real part\) .*_data_real.mrc' \(named in .*\) does not exist"):
        read_fourier_sums(s)


def test_unreadable_array(tmp_path: Path) -> None:
    s = read_external_reconstruct_star(_write(tmp_path))
    Path(s.weight).write_bytes(b"not an mrc file")
    with pytest.raises(InputFileError, match=r"weight .* is not (a readable MRC|an MRC) file"):
        read_fourier_sums(s)


def test_optimiser_header_and_general(tmp_path: Path) -> None:
    opt = tmp_path / "run_it003_optimiser.star"
    opt.write_text("# RELION optimiser; version 3.1.3\n# --o Refine3D/job012/run --auto_refine "
                   "--sequential_halves_recons --split_random_halves\n\ndata_optimiser_general\n\n"
                   "_rlnOutputRootName Refine3D/job012/run\n_rlnSolventMaskName mask.mrc\n"
                   "_rlnParticleDiameter 200.000000\n")
    general, header = read_optimiser_general(opt)
    assert general["rlnSolventMaskName"] == "mask.mrc"
    assert "--sequential_halves_recons" in header


def test_sampling_and_job_star(tmp_path: Path) -> None:
    samp = tmp_path / "run_it003_sampling.star"
    samp.write_text("\ndata_sampling_general\n\n_rlnHealpixOrder 2\n_rlnSymmetryGroup D2\n")
    assert read_sampling_symmetry(samp) == "D2"
    job = tmp_path / "job.star"
    job.write_text("\ndata_job\n\n_rlnJobType 2\n\ndata_joboptions_values\n\nloop_\n"
                   "_rlnJobOptionVariable #1\n_rlnJobOptionValue #2\nfn_mask MaskCreate/job005/mask.mrc\n"
                   "nr_threads 4\n")
    opts = read_job_options(job)
    assert opts["fn_mask"] == "MaskCreate/job005/mask.mrc" and opts["nr_threads"] == "4"
