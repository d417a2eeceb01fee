"""One suite for the option table: every engine option reaches the engine through every host.

The cases are derived from ``locband.options.ENGINE`` itself, so a new engine option is tested on
every host the moment it is added to the table (and a host that does not offer it fails here).
Each case sets one option to a value other than its default in the host's own spelling and
checks that the request's engine settings hold that value and nothing else changed.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from locband import cli
from locband.commands import cryosparc, demo, denoise_cmd, filter_cmd, relion_external, relion_reconstruct
from locband.options import ENGINE, PIXEL_SIZE, REPORT, EngineSettings, Option

ONLINE = ["--project", "P1", "--workspace", "W1", "--job", "J1"]


def other_value(option: Option) -> Any:
    """A valid value that is not the option's default."""
    if option.kind == "switch":
        return not option.default
    if option.kind == "choice":
        return next(c for c in option.choices if c != option.default)
    if option.kind == "count":
        return int(option.default or 1) + 2
    if option.kind == "number":
        return float(option.default) * 1.25  # every engine number allows a quarter more than its default
    raise AssertionError(f"no test value for kind {option.kind!r}")


def cli_tokens(option: Option, value: Any) -> list[str]:
    """The command-line tokens of one option (none for the value None: the option not given)."""
    if value is None:
        return []
    return [option.cli_flag] if option.kind == "switch" else [option.cli_flag, str(value)]


def relion_tokens(option: Option, value: Any) -> list[str]:
    """The same as RELION passes it: a job parameter by its label, the threads as --j."""
    if value is None:
        return []
    if option.name == "threads":
        return ["--j", str(value)]
    return [f"--{option.name}", "yes" if value is True else str(value)]


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


HOSTS["CCP-EM job"] = _ccpem_engine
#: hosts that offer some of the engine options only (an interpretation map has no mask to apply, no
#: per-band SNR output and no GPU path); every other host offers them all
OFFERED = {"locband denoise": denoise_cmd.ENGINE_OPTIONS}


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
