"""device="cuda" without a GPU: the errors, and the engine's array code on a fake device.

The fake device (``tests/helpers/fake_cupy.py``) runs on NumPy but refuses what CuPy refuses:
implicit conversion of a device array to a host array, and host arrays mixed into device
operations. The whole filter running on it shows that the engine keeps its arrays on the
device from the input transfer to the result transfer. The real GPU is tested by
``tests/engine/test_gpu.py`` (marker ``gpu``) and ``integration/benchmarks/bench_gpu.py``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import fake_cupy
import numpy as np
import pytest

from locband import FilterParams, LocalFilter, cli, local_filter
from locband.adapters.loop import RefinementFilter
from locband.engine import _device, _fft
from locband.engine.synthetic import synthetic_pair
from locband.io import write_map

ROOT = Path(__file__).resolve().parents[2]
INSTALL = re.escape(_device.GPU_INSTALL_HINT)


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(_device, "_import_cupy", lambda: fake_cupy.namespace)
    fake_cupy.transfers.update(to_device=0, to_host=0)
    return fake_cupy.namespace


@pytest.fixture
def no_cupy(monkeypatch: pytest.MonkeyPatch):
    def missing():
        raise ImportError("No module named 'cupy'")
    monkeypatch.setattr(_device, "_import_cupy", missing)


def test_the_fake_device_refuses_what_cupy_refuses(fake_gpu) -> None:
    a = fake_gpu.asarray(np.ones(4, np.float32))
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        a * np.ones(4, np.float32)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
        np.asarray(a)
    with pytest.raises(TypeError, match="use the array namespace"):
        np.stack([a, a])
    with pytest.raises(TypeError, match="no device array"):
        fake_gpu.multiply(np.ones(4), 2)
    assert float((a * np.float32(2)).sum()) == 8.0 and isinstance(a.get(), np.ndarray)  # scalars and .get() are fine


def test_cuda_without_cupy_says_what_to_install(no_cupy) -> None:
    pair = synthetic_pair((16, 16, 16), noise_std=0.5, seed=1)
    with pytest.raises(_device.DeviceUnavailableError, match=f"needs CuPy, which is not installed.*{INSTALL}"):
        LocalFilter((16, 16, 16), pixel_size_angstrom=1.0, device="cuda")
    with pytest.raises(ValueError, match=INSTALL):  # a ValueError: the commands' one-line errors catch it
        local_filter(pair.half1, pair.half2, pixel_size_angstrom=1.0, device="cuda")
    with pytest.raises(ValueError, match=INSTALL):
        RefinementFilter((16, 16, 16), pixel_size_angstrom=1.0, workers=1, device="cuda")


def test_cuda_with_cupy_but_no_gpu_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoDriver:
        class cuda:  # noqa: N801 - mirrors cupy.cuda.runtime
            class runtime:  # noqa: N801
                @staticmethod
                def getDeviceCount() -> int:  # noqa: N802
                    raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")

    monkeypatch.setattr(_device, "_import_cupy", lambda: NoDriver)
    with pytest.raises(_device.DeviceUnavailableError, match="finds no usable CUDA GPU.*cudaErrorInsufficientDriver"):
        LocalFilter((16, 16, 16), pixel_size_angstrom=1.0, device="cuda")


def test_filter_command_with_cuda_but_no_cupy_exits_1_with_one_line(no_cupy, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    pair = synthetic_pair((16, 16, 16), noise_std=0.5, seed=1)
    for name, vol in (("h1", pair.half1), ("h2", pair.half2)):
        write_map(tmp_path / f"{name}.mrc", vol, pixel_size_angstrom=1.0)
    rc = cli.main(["filter", str(tmp_path / "h1.mrc"), str(tmp_path / "h2.mrc"), "--out-dir", str(tmp_path / "out"),
                   "--device", "cuda", "--quiet", "--no-report", "--threads", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and _device.GPU_INSTALL_HINT in err[0]
    assert not (tmp_path / "out" / "filtered.mrc").exists()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"device": "gpu"}, "device must be 'cpu' or 'cuda', got 'gpu'"),
    ({"device": "cuda", "backend": "pyfftw"}, "backend='pyfftw' chooses the FFT on the CPU"),
])
def test_bad_device_settings(kwargs: dict[str, str], message: str, fake_gpu) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        LocalFilter((16, 16, 16), pixel_size_angstrom=1.0, **kwargs)


def test_the_gpu_extra_is_declared() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "gpu" in _device.GPU_INSTALL_HINT and any(d.startswith("cupy-cuda12x") for d in extras["gpu"])


@pytest.mark.parametrize("params", [FilterParams(), FilterParams(keep_band_snr=True, apply_mask=True)])
def test_the_filter_on_a_fake_device_keeps_its_arrays_there_and_matches_the_cpu(fake_gpu, params) -> None:
    pair = synthetic_pair((40, 36, 44), kind="rigid_flexible", noise_std=0.7, seed=3)
    cpu = LocalFilter(pair.truth.shape, pixel_size_angstrom=1.0, mask=pair.mask, params=params)(pair.half1, pair.half2)
    dev = LocalFilter(pair.truth.shape, pixel_size_angstrom=1.0, mask=pair.mask, params=params, device="cuda")
    res = dev(pair.half1, pair.half2)
    assert fake_cupy.transfers["to_device"] > 0 and fake_cupy.transfers["to_host"] >= 5  # 3 maps, 2 local-res maps
    scale = float(np.abs(cpu.full).max())
    for name in ("half1", "half2", "full", "local_frequency", "local_resolution_angstrom"):
        got = getattr(res, name)
        assert type(got) is np.ndarray and got.dtype == np.float32, name  # results come back to the host
    # the same arithmetic, but whole-volume transforms where the CPU path splits them into slabs:
    # float32 rounding only (measured 2.6e-7 of the range; see test_regression.py for the bound)
    for a, b in ((res.full, cpu.full), (res.half1, cpu.half1), (res.half2, cpu.half2)):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-6 * scale)
    np.testing.assert_allclose(res.local_frequency, cpu.local_frequency, rtol=0, atol=1e-4)  # as in test_regression
    if params.keep_band_snr:
        assert res.band_snr is not None and type(res.band_snr) is np.ndarray
        np.testing.assert_allclose(res.band_snr, cpu.band_snr, rtol=1e-3, atol=1e-6)  # ratios of the same powers


def test_band_stats_seam_returns_device_arrays(fake_gpu) -> None:
    pair = synthetic_pair((32, 32, 32), noise_std=0.7, seed=4)
    lf = LocalFilter((32, 32, 32), pixel_size_angstrom=1.0, device="cuda")
    f1, f2 = (_fft.rfftn(h, backend=lf.backend) for h in (pair.half1, pair.half2))
    b = lf.layout.n_bands - 2
    b1, b2, sig, noise = lf._band_stats(b, f1, f2)
    assert all(isinstance(a, fake_cupy.FakeDeviceArray) for a in (b1, b2, sig, noise))
    assert b1.shape == lf.layout.grid_shapes[b] and sig.shape == lf.layout.stats_shapes[b]
    cpu = LocalFilter((32, 32, 32), pixel_size_angstrom=1.0)
    c1, c2, csig, cnoise = cpu._band_stats(b, *(_fft.rfftn(h) for h in (pair.half1, pair.half2)))
    np.testing.assert_allclose(b1.get(), c1, rtol=0, atol=1e-6 * float(np.abs(c1).max()))  # float32 rounding
    np.testing.assert_allclose(sig.get(), csig, rtol=0, atol=1e-5 * float(np.abs(csig).max()))


def test_loop_api_and_command_on_the_fake_device(fake_gpu, tmp_path: Path) -> None:
    pair = synthetic_pair((24, 24, 24), noise_std=0.5, seed=5)
    rf = RefinementFilter((24, 24, 24), pixel_size_angstrom=1.0, mask=pair.mask, workers=1, device="cuda")
    steps = [rf(pair.half1, pair.half2) for _ in range(2)]
    np.testing.assert_array_equal(steps[0].full, steps[1].full)
    assert steps[1].new_fft_plans == 0  # the same transforms again: no new plans
    for name, vol in (("h1", pair.half1), ("h2", pair.half2)):
        write_map(tmp_path / f"{name}.mrc", vol, pixel_size_angstrom=1.0)
    rc = cli.main(["filter", str(tmp_path / "h1.mrc"), str(tmp_path / "h2.mrc"), "--out-dir", str(tmp_path / "out"),
                   "--device", "cuda", "--quiet", "--no-report", "--threads", "1"])
    assert rc == 0 and (tmp_path / "out" / "filtered.mrc").is_file()


def test_gpu_benchmark_script_runs_on_the_fake_device() -> None:
    """bench_gpu.py is run once, by hand, where a GPU is lent: its logic is checked here."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "integration" / "benchmarks" / "bench_gpu.py"), "--fake-device",
                          "--sizes", "24", "--calls", "2"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "24^3: GPU wall per call" in out.stdout and "largest difference to the CPU" in out.stdout
    assert "new FFT plans per call [" in out.stdout
