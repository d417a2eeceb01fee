"""One suite for the option table: every engine option reaches the engine through every host.

The cases are derived from ``locband.options.ENGINE`` itself, so a new engine option is tested on
every host the moment it is added to the table (and a host that does not offer it fails here).
Each case sets one option to a value other than its default in the host's own spelling and
checks that the request's engine settings hold that value and nothing else changed. The same for
the interpretation map's settings (``locband.options.DENOISE``) on every host that makes it, and
the hosts that must never make it (the refinement hook and loops) do not offer its switch.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from locband import cli
from locband.commands import cryosparc, demo, denoise_cmd, filter_cmd, relion_external, relion_reconstruct
from locband.options import DENOISE, ENGINE, INTERPRETATION, PIXEL_SIZE, REPORT, DenoiseSettings, EngineSettings, Option

ONLINE = ["--project", "P1", "--workspace", "W1", "--job", "J1"]


def other_value(option: Option) -> Any:
    """A valid value that is not the option's default."""
    if option.kind in ("switch", "switch-off"):
        return not option.default
    if option.kind == "choice":
        return next(c for c in option.choices if c != option.default)
    if option.kind in ("count", "integer"):
        return int(option.default or 1) + 2  # cycles: 3 of at most 10
    if option.kind in ("number", "positive"):
        # every number allows a quarter more than its default; without one, a mass or B-factor of 42
        return 42.0 if option.default is None else float(option.default) * 1.25
    raise AssertionError(f"no test value for kind {option.kind!r}")


def cli_tokens(option: Option, value: Any) -> list[str]:
    """The command-line tokens of one option (none for the value None: the option not given)."""
    if value is None:
        return []
    return [option.cli_flag] if option.kind in ("switch", "switch-off") else [option.cli_flag, str(value)]


def relion_tokens(option: Option, value: Any) -> list[str]:
    """The same as RELION passes it: a job parameter by its label, the threads as --j."""
    if value is None:
        return []
    if option.name == "threads":
        return ["--j", str(value)]
    return [f"--{option.name}", {True: "yes", False: "no"}.get(value, str(value)) if isinstance(value, bool)
            else str(value)]


def _parse(argv: list[str]) -> argparse.Namespace:
    return cli.build_parser().parse_args(argv)


#: host -> (option, value) -> the engine settings of the request that host builds
HOSTS: dict[str, Callable[[Option, Any], EngineSettings]] = {
    "locband filter": lambda o, v: filter_cmd.request_from_args(
        _parse(["filter", "h1.mrc", "h2.mrc", *cli_tokens(o, v)])).job.engine,
    "locband demo": lambda o, v: demo.request_from_args(_parse(["demo", *cli_tokens(o, v)])).engine,
    "locband denoise": lambda o, v: denoise_cmd.request_from_args(
        _parse(["denoise", "h1.mrc", "h2.mrc", *cli_tokens(o, v)])).job.engine,
    "RELION hook": lambda o, v: relion_reconstruct.request_from_args(
        _parse(["relion-reconstruct", "run_it001_half1_class001_external_reconstruct.star", *cli_tokens(o, v)])).engine,
    "cryoSPARC filter": lambda o, v: cryosparc.filter_request(_parse(["cryosparc", "filter", *ONLINE,
                                                                       *cli_tokens(o, v)])).engine,
    "cryoSPARC offline": lambda o, v: cryosparc.offline_request(
        _parse(["cryosparc", "offline", "J42", "--out-dir", "o", *cli_tokens(o, v)])).engine,
    "cryoSPARC loop": lambda o, v: cryosparc.loop_request(_parse(["cryosparc", "loop", *ONLINE,
                                                                   *cli_tokens(o, v)])).filter.engine,
    # RELION's --j is the most threads the job may use (it caps the idle cores: tests/test_threads.py)
    "RELION External job": lambda o, v: _relion_engine(relion_external.parse_argv(["--o", "External/job001/",
                                                                                    *relion_tokens(o, v)])),
}


def _relion_engine(req: Any) -> EngineSettings:
    return dataclasses.replace(req.engine, threads=req.max_threads)


def _ccpem_engine(option: Option, value: Any) -> EngineSettings:
    ccpem = pytest.importorskip("locband.adapters.ccpem", reason="the CCP-EM pipeliner is not installed")
    name = "nr_threads" if option.name == "threads" else option.name
    values = {"half_map_1": "h1.mrc", "half_map_2": "h2.mrc", **({} if value is None else {name: value})}
    argv = ccpem.build_arguments(ccpem.FILTER_OPTIONS, values)
    return filter_cmd.request_from_args(_parse(["filter", *argv])).job.engine


def _ccpem_denoise_request(option: Option, value: Any) -> denoise_cmd.DenoiseCommand:
    """The `locband denoise` request the CCP-EM interpretation-map job makes of one job option value."""
    ccpem = pytest.importorskip("locband.adapters.ccpem", reason="the CCP-EM pipeliner is not installed")
    name = "nr_threads" if option.name == "threads" else option.name
    if value is not None and name not in ccpem.DENOISE_OPTIONS:
        raise SystemExit(2)  # the job has no such option, as `locband denoise` has no such flag
    values = {"half_map_1": "h1.mrc", "half_map_2": "h2.mrc", **{n: o.default for n, o in ccpem.DENOISE_OPTIONS.items()
                                                                 if o.default is not None},
              **({} if value is None else {name: value})}
    argv = ccpem.build_arguments(ccpem.DENOISE_OPTIONS, values)
    return denoise_cmd.request_from_args(_parse(["denoise", *argv]))


HOSTS["CCP-EM job"] = _ccpem_engine
HOSTS["CCP-EM denoise job"] = lambda o, v: _ccpem_denoise_request(o, v).job.engine
#: hosts that offer some of the engine options only (an interpretation map has no mask to apply, no
#: per-band SNR output and no GPU path); every other host offers them all
OFFERED = {"locband denoise": denoise_cmd.ENGINE_OPTIONS, "CCP-EM denoise job": denoise_cmd.ENGINE_OPTIONS}


@pytest.mark.parametrize("host", sorted(HOSTS))
@pytest.mark.parametrize("option", ENGINE, ids=[o.name for o in ENGINE])
def test_engine_option_reaches_the_engine(host: str, option: Option) -> None:
    if option not in OFFERED.get(host, ENGINE):
        with pytest.raises(SystemExit):  # argparse: not an option of that command
            HOSTS[host](option, other_value(option))
        return
    value = other_value(option)
    got = HOSTS[host](option, value)
    expected = EngineSettings.from_values({option.name: value})
    assert expected != EngineSettings()  # the value differs from the default, or the test could not tell
    assert got == expected


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_defaults_are_the_engines(host: str) -> None:
    """Nothing given: every host asks the engine for its own defaults."""
    assert HOSTS[host](ENGINE[0], None) == EngineSettings()


@pytest.mark.parametrize("option", ENGINE, ids=[o.name for o in ENGINE])
def test_text_values_as_relion_writes_them(option: Option) -> None:
    """The External job reads every option from text; yes/no and numbers as RELION's GUI writes them."""
    value = other_value(option)
    text = {True: "yes", False: "no"}.get(value, str(value)) if isinstance(value, bool) else str(value)
    assert option.parse_text(text, called=f"--{option.name}") == value


@pytest.mark.parametrize(("argv", "request_field", "expected"), [
    (["filter", "h1.mrc", "h2.mrc", "--pixel-size", "1.25"], "job.pixel_size_angstrom", 1.25),
    (["filter", "h1.mrc", "h2.mrc", "--no-report"], "job.report", False),
    (["filter", "h1.mrc", "h2.mrc", "--mask", "m.mrc"], "job.mask.name", "m.mrc"),
    (["relion-reconstruct", "x_external_reconstruct.star", "--pixel-size", "1.25"], "pixel_size_angstrom", 1.25),
    (["demo", "--no-report"], "report", False),
])
def test_run_options_reach_the_request(argv: list[str], request_field: str, expected: Any) -> None:
    module = cli.command_module(argv[0])
    obj: Any = module.request_from_args(_parse(argv))
    for part in request_field.split("."):
        obj = getattr(obj, part)
    assert obj == expected


def test_relion_spells_the_run_options_as_its_own_labels() -> None:
    req = relion_external.parse_argv(["--o", "x/", "--angpix", "1.25", "--report", "no"])
    assert (req.pixel_size_angstrom, req.report) == (1.25, False)
    assert relion_external.PARAMETERS["angpix"] is PIXEL_SIZE and relion_external.PARAMETERS["report"] is REPORT


@pytest.mark.parametrize(("argv", "message"), [
    (["filter", "a", "b", "--threads", "0"], "--threads must be >= 1, got 0"),
    (["filter", "a", "b", "--pixel-size", "-1"], "--pixel-size must be > 0 Å, got -1.0"),
    (["filter", "a", "b", "--band-ratio", "0.5"], "FilterParams.band_ratio must be a number in (1, 4], got 0.5"),
])
def test_values_out_of_range_name_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        filter_cmd.request_from_args(_parse(argv))


#: hosts that make the interpretation map: (option, value) -> the request's DenoiseSettings
DENOISE_HOSTS: dict[str, Callable[[Option, Any], DenoiseSettings | None]] = {
    "locband denoise": lambda o, v: denoise_cmd.request_from_args(
        _parse(["denoise", "h1.mrc", "h2.mrc", *cli_tokens(o, v)])).job.denoise,
    "RELION External job": lambda o, v: relion_external.parse_argv(
        ["--o", "External/job001/", "--interpretation", "yes", *relion_tokens(o, v)]).interpretation,
    "cryoSPARC filter": lambda o, v: cryosparc.filter_request(
        _parse(["cryosparc", "filter", *ONLINE, "--interpretation", *cli_tokens(o, v)])).interpretation,
    "cryoSPARC offline": lambda o, v: cryosparc.offline_request(
        _parse(["cryosparc", "offline", "J42", "--out-dir", "o", "--interpretation", *cli_tokens(o, v)])).interpretation,
    "CCP-EM denoise job": lambda o, v: _ccpem_denoise_request(o, v).job.denoise,
}


@pytest.mark.parametrize("host", sorted(DENOISE_HOSTS))
@pytest.mark.parametrize("option", DENOISE, ids=[o.name for o in DENOISE])
def test_interpretation_option_reaches_the_request(host: str, option: Option) -> None:
    value = other_value(option)
    expected = DenoiseSettings.from_values({option.name: value})
    assert expected != DenoiseSettings()  # the value differs from the default, or the test could not tell
    assert DENOISE_HOSTS[host](option, value) == expected


@pytest.mark.parametrize("host", sorted(DENOISE_HOSTS))
def test_interpretation_defaults(host: str) -> None:
    assert DENOISE_HOSTS[host](DENOISE[0], None) == DenoiseSettings()


#: hosts whose maps are references of the next iteration, or the linear filter's command: no interpretation map
NEVER_INTERPRETATION = {
    "RELION hook": ["relion-reconstruct", "run_it001_half1_class001_external_reconstruct.star"],
    "cryoSPARC loop": ["cryosparc", "loop", *ONLINE],
    "locband filter": ["filter", "h1.mrc", "h2.mrc"],
}


@pytest.mark.parametrize("host", sorted(NEVER_INTERPRETATION))
@pytest.mark.parametrize("option", [INTERPRETATION, *DENOISE], ids=["interpretation", *(o.name for o in DENOISE)])
def test_refinement_hosts_cannot_ask_for_the_interpretation_map(host: str, option: Option) -> None:
    argv = NEVER_INTERPRETATION[host]
    _parse(argv)  # the command line itself is fine ...
    with pytest.raises(SystemExit) as exc:  # ... but the switch and its settings are no options there
        cli.main([*argv, *cli_tokens(option, other_value(option))])
    assert exc.value.code == 2


def test_interpretation_settings_without_the_switch_are_refused() -> None:
    with pytest.raises(ValueError, match="job parameter --cycles is a setting of the interpretation map, which is off"):
        relion_external.parse_argv(["--o", "x/", "--cycles", "2"])
    with pytest.raises(ValueError, match="--bfactor is a setting of the interpretation map, which is off"):
        cryosparc.filter_request(_parse(["cryosparc", "filter", *ONLINE, "--bfactor", "-40"]))
    assert relion_external.parse_argv(["--o", "x/", "--interpretation", "no"]).interpretation is None
