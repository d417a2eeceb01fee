"""Every place that turns the global FSC into Å says when it is a bound or when there is none (issue 8, item 2).

Before the fix, halves whose FSC was below 0.143 from the first shell on got a "crossing"
extrapolated from shell 0 (the mean), e.g. "FSC=0.143 at 0.60 Å" with Nyquist at 3 Å.
"""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from locband.cli import main
from locband.engine.synthetic import synthetic_pair
from locband.io import write_map

PX = 1.5


def _filter(tmp_path, h1, h2, capsys, *extra):
    for name, vol in (("h1", h1), ("h2", h2)):
        write_map(tmp_path / f"{name}.mrc", vol, pixel_size_angstrom=PX)
    rc = main(["filter", str(tmp_path / "h1.mrc"), str(tmp_path / "h2.mrc"), "--out-dir", str(tmp_path / "out"),
               "--quiet", *extra])
    assert rc == 0
    return json.loads((tmp_path / "out" / "summary.json").read_text()), capsys.readouterr().out


def _noise_pair():
    # independent pure noise whose mean (shell 0) correlates negatively: the case that was
    # extrapolated past Nyquist (seed chosen so that shell 1 is below 0.143, checked below)
    rng = np.random.default_rng(3)
    return rng.standard_normal((24, 24, 24)).astype(np.float32) + 2, rng.standard_normal((24, 24, 24)).astype(
        np.float32) - 2


def test_no_shell_above_the_threshold_is_reported_as_not_reached(tmp_path, capsys):
    summary, out = _filter(tmp_path, *_noise_pair(), capsys, "--no-report")
    assert summary["fsc"]["unmasked"]["fsc"][1] < 0.143
    assert summary["fsc_0143_angstrom"]["unmasked"] is None
    assert summary["fsc_crossing"]["0143"]["unmasked"] == "below_at_first_shell"
    assert "FSC=0.143 not reached (below 0.143 from the first shell) (unmasked)" in out
    # the summary is strict JSON (no Infinity/NaN a JSON parser would reject)
    json.loads((tmp_path / "out" / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(c))


def test_an_fsc_above_the_threshold_up_to_nyquist_is_a_bound(tmp_path, capsys):
    pair = synthetic_pair((24, 24, 24), noise_std=1e-3, seed=5)  # FSC ~0.93 at Nyquist
    summary, out = _filter(tmp_path, pair.half1, pair.half2, capsys)  # with the report
    assert summary["fsc_0143_angstrom"]["unmasked"] == pytest.approx(2 * PX)
    assert summary["fsc_crossing"]["0143"]["unmasked"] == "above_to_last_shell"
    assert "FSC=0.143 at <= 3.00 Å (the last shell: never below 0.143) (unmasked)" in out
    assert (tmp_path / "out" / "report.png").is_file()


def test_locband_report_redraws_a_run_without_any_crossing(tmp_path, capsys):
    _filter(tmp_path, *_noise_pair(), capsys)
    assert main(["report", str(tmp_path / "out")]) == 0


def test_the_relion_hook_log_record_is_strict_json_and_says_what_its_numbers_are():
    from locband import local_filter
    from locband.adapters.relion_extrec.call import _fsc_fields

    h1, h2 = _noise_pair()
    result = local_filter(h1, h2, pixel_size_angstrom=PX, mask=np.ones_like(h1))
    fields = _fsc_fields(result, SimpleNamespace(pixel_size_angstrom=PX))
    assert fields["fsc_0143_angstrom_unmasked"] is None
    assert fields["fsc_0143_crossing_unmasked"] == "below_at_first_shell"
    assert all(v is None or isinstance(v, str) or math.isfinite(v) for v in fields.values())
    json.dumps(fields, allow_nan=False)
