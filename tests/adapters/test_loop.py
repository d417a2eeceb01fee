"""The scripted loop API: one RefinementFilter per refinement, called every iteration."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from locband import local_filter
from locband import denoise
from locband.adapters.loop import FSC_THRESHOLD, LoopStep, RefinementFilter
from locband.engine.denoise_params import DenoiseParams, DenoiseResult
from locband.engine.params import FilterParams
from locband.engine.synthetic import synthetic_pair
from locband.engine.units import cycles_to_angstrom

README = Path(__file__).resolve().parents[2] / "README.md"


def _iterations(shape: tuple[int, int, int], n: int) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    pair = synthetic_pair(shape, noise_std=0.5, seed=3)
    halves = []
    for i in range(n):
        rng = np.random.default_rng(100 + i)
        halves.append(tuple((pair.truth + rng.normal(0, 0.5, shape)).astype(np.float32) for _ in range(2)))
    return pair.mask, halves


PLANS_SCRIPT = """
import json, sys
import numpy as np
import locband.engine._local_stats as stats_mod
from locband.adapters.loop import RefinementFilter
from locband.engine.synthetic import synthetic_pair

layouts = []
real_layout = stats_mod.band_layout
stats_mod.band_layout = lambda *a, **k: layouts.append(1) or real_layout(*a, **k)
shape = (37, 35, 33)
pair = synthetic_pair(shape, noise_std=0.5, seed=3)
rf = RefinementFilter(shape, pixel_size_angstrom=1.3, mask=pair.mask, backend="pyfftw")
steps = []
for i in range(4):
    rng = np.random.default_rng(100 + i)
    h1, h2 = ((pair.truth + rng.normal(0, 0.5, shape)).astype(np.float32) for _ in range(2))
    steps.append(rf(h1, h2))
print(json.dumps({"calls": rf.calls, "index": [s.call_index for s in steps],
                  "plans": [s.new_fft_plans for s in steps], "layouts": len(layouts),
                  "same_bands": all(s.result.bands is steps[0].result.bands for s in steps)}))
"""


def test_later_calls_make_no_plans_and_no_setup() -> None:
    # a fresh interpreter: no other test has planned a transform there, whatever order they run in
    out = subprocess.run([sys.executable, "-c", PLANS_SCRIPT], capture_output=True, text=True, check=True,
                         timeout=300).stdout
    got = json.loads(out)
    assert got["calls"] == 4 and got["index"] == [1, 2, 3, 4]
    assert got["plans"][0] > 0  # the first call plans this box ...
    assert got["plans"][1:] == [0, 0, 0]  # ... later calls reuse every plan
    assert got["layouts"] == 1  # the band layout was built once, by the constructor
    assert got["same_bands"]


def test_each_step_equals_a_fresh_one_shot_filter() -> None:
    shape = (32, 32, 32)
    mask, halves = _iterations(shape, 3)
    rf = RefinementFilter(shape, pixel_size_angstrom=1.1, mask=mask, backend="scipy")
    got = []
    for h1, h2 in halves:
        step = rf(h1, h2)
        got.append(step.fsc_resolution_angstrom)
        ref = local_filter(h1, h2, pixel_size_angstrom=1.1, mask=mask, backend="scipy")
        # the same arithmetic on the same inputs: reuse must not change a single value
        np.testing.assert_array_equal(step.half1, ref.half1)
        np.testing.assert_array_equal(step.half2, ref.half2)
        np.testing.assert_array_equal(step.full, ref.full)
        np.testing.assert_array_equal(step.local_resolution_angstrom, ref.local_resolution_angstrom)
        expected = float(cycles_to_angstrom(ref.fsc_masked.crossing(FSC_THRESHOLD), pixel_size_angstrom=1.1))
        assert step.fsc_resolution_angstrom == pytest.approx(expected, rel=1e-12)
    assert rf.history == got


def test_identical_halves_are_refused() -> None:
    x = np.random.default_rng(5).standard_normal((24, 24, 24)).astype(np.float32)
    rf = RefinementFilter(x.shape, pixel_size_angstrom=2.0)
    with pytest.raises(ValueError, match="half1 and half2 are identical or nearly so"):
        rf(x, x)


def test_an_fsc_above_the_threshold_to_nyquist_is_reported_as_a_bound() -> None:
    pair = synthetic_pair((24, 24, 24), noise_std=1e-3, seed=5)  # FSC ~0.93 at Nyquist
    rf = RefinementFilter(pair.half1.shape, pixel_size_angstrom=2.0)
    step = rf(pair.half1, pair.half2)
    assert isinstance(step, LoopStep)
    assert step.fsc_crossing == "above_to_last_shell"
    # the last shell (Nyquist, 4 Å), never finer
    assert step.fsc_resolution_angstrom == pytest.approx(4.0, rel=1e-12)


def test_no_shell_above_the_threshold_gives_inf_not_a_number_beyond_nyquist() -> None:
    rng = np.random.default_rng(3)
    h1, h2 = (rng.standard_normal((24, 24, 24)).astype(np.float32) for _ in range(2))
    rf = RefinementFilter(h1.shape, pixel_size_angstrom=2.0)
    step = rf(h1, h2)
    assert step.result.fsc_unmasked.fsc[1] < 0.143  # this seed: pure noise, below from the first shell
    assert step.fsc_crossing == "below_at_first_shell"
    assert step.fsc_resolution_angstrom == float("inf")


def test_noise_is_worse_than_signal() -> None:
    shape = (32, 32, 32)
    rng = np.random.default_rng(9)
    signal = synthetic_pair(shape, noise_std=0.3, seed=4)
    rf = RefinementFilter(shape, pixel_size_angstrom=1.0)
    good = rf(signal.half1, signal.half2)
    bad = rf(*(rng.standard_normal(shape).astype(np.float32) for _ in range(2)))
    assert bad.fsc_resolution_angstrom > good.fsc_resolution_angstrom


@pytest.mark.parametrize(("shape", "message"), [((32, 32, 30), "planned for"), ((32, 32), "same shape|shape")])
def test_wrong_shape_is_rejected(shape: tuple[int, ...], message: str) -> None:
    rf = RefinementFilter((32, 32, 32), pixel_size_angstrom=1.0)
    x = np.ones(shape, np.float32) + np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    with pytest.raises(ValueError, match=message):
        rf(x, x)


@pytest.mark.parametrize(("kwargs", "message"), [({"workers": 0}, "workers"),
                                                 ({"pixel_size_angstrom": -1.0}, "pixel_size"),
                                                 ({"backend": "cufft"}, "backend")])
def test_bad_settings_are_rejected(kwargs: dict, message: str) -> None:
    args = {"pixel_size_angstrom": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        RefinementFilter((16, 16, 16), **args)


def test_readme_loop_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python loop API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the README's loop section has one python example"
    names: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(blocks[0], str(README), "exec"), names)
    rf, step = names["rf"], names["step"]
    assert isinstance(rf, RefinementFilter) and isinstance(step, LoopStep)
    assert rf.calls == 3 and step.call_index == 3  # three iterations, one filter
    assert step.new_fft_plans == 0  # the third call plans nothing, whatever ran before
    assert len(rf.history) == 3 and step.fsc_resolution_angstrom == rf.history[-1]
    out = capsys.readouterr().out.splitlines()
    printed = [ln for ln in out if ln.startswith("iteration")]
    assert len(printed) == 3  # one line per iteration, as the README shows
    final = names["final"]
    assert isinstance(final, DenoiseResult) and final.full.shape == step.full.shape
    assert [ln for ln in out if ln.startswith("interpretation map")]
    assert rf.calls == 3  # the interpretation map is not a filter call: the references are untouched


def test_interpretation_map_of_an_iteration() -> None:
    """The interpretation map is `locband denoise`'s, planned once, and it leaves the references alone."""
    mask, halves = _iterations((28, 30, 32), 2)
    params = FilterParams(criterion=0.2, apply_mask=True)
    rf = RefinementFilter((28, 30, 32), pixel_size_angstrom=1.3, mask=mask, params=params, workers=1)
    ref = RefinementFilter((28, 30, 32), pixel_size_angstrom=1.3, mask=mask, params=params, workers=1)
    first = rf(*halves[0])
    got = rf.interpretation(*halves[0])
    # the engine's interpretation map with the filter's bands and statistics (no mask to apply)
    expected = denoise(*halves[0], pixel_size_angstrom=1.3, mask=mask, workers=1,
                       params=DenoiseParams.from_physical(pixel_size_angstrom=1.3,
                                                          filter=FilterParams(criterion=0.2)))
    for name in ("full", "half1", "half2", "local_resolution_angstrom"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))  # same code, same data
    assert not np.array_equal(got.full, first.full)  # not the linear map
    again = rf.interpretation(*halves[1])
    assert len(rf._denoisers) == 1 and again.full.shape == got.full.shape  # planned once, reused
    custom = rf.interpretation(*halves[1], params=DenoiseParams.from_physical(pixel_size_angstrom=1.3,
                                                                             connectivity=False))
    assert custom.params.connectivity is False and len(rf._denoisers) == 2
    # the references: the next step is the same as from a filter that never made an interpretation map
    ref(*halves[0])
    step, ref_step = rf(*halves[1]), ref(*halves[1])
    assert rf.calls == ref.calls == 2 and rf.history == ref.history
    np.testing.assert_array_equal(step.half1, ref_step.half1)
    np.testing.assert_array_equal(step.half2, ref_step.half2)
