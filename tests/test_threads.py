"""The default thread count: the idle CPUs this process may run on (faked affinity and load)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pytest

from locband import _threads
from locband._threads import default_threads


def fake_machine(monkeypatch: pytest.MonkeyPatch, *, cpus: int, allowed: int | None = None,
                 load: float | None = 0.0) -> None:
    """``cpus`` online CPUs, ``allowed`` of them in the affinity mask, a 1-minute load of ``load``."""
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(allowed if allowed is not None else cpus)),
                        raising=False)
    if load is None:
        def no_load() -> tuple[float, float, float]:
            raise OSError("no load average")
        monkeypatch.setattr(os, "getloadavg", no_load)
    else:
        monkeypatch.setattr(os, "getloadavg", lambda: (load, 0.0, 0.0))


@pytest.mark.parametrize(("cpus", "allowed", "load", "kwargs", "expected"), [
    (32, None, 0.1, {}, 32),           # idle workstation: every core
    (32, None, 0.6, {}, 31),           # a core busy more than half of the time is not idle
    (2, None, 0.5, {}, 2),             # ... one busy half of the time or less is
    (2, None, 0.51, {}, 1),
    (8, None, 6.7, {}, 1),             # RELION ranks on the node: what is left
    (8, None, 8.0, {}, 1),             # fully busy: still one thread
    (8, None, 30.0, {}, 1),            # overloaded: never below one
    (16, 4, 8.0, {}, 2),               # confined to 4 of 16 CPUs: their share of the load
    (16, 4, 0.0, {}, 4),               # ... and never more than the CPUs it may use
    (8, None, 0.0, {"concurrent": 2}, 4),   # the hook's two half-set calls share the idle cores
    (8, None, 7.0, {"concurrent": 2}, 1),
    (8, None, 0.0, {"limit": 3}, 3),   # RELION's --j caps the idle cores ...
    (8, None, 6.0, {"limit": 6}, 2),   # ... which may be fewer
    (4, None, None, {}, 4),            # no load average on this system: treated as idle
])
def test_default_threads(monkeypatch: pytest.MonkeyPatch, cpus: int, allowed: int | None, load: float | None,
                         kwargs: dict[str, int], expected: int) -> None:
    fake_machine(monkeypatch, cpus=cpus, allowed=allowed, load=load)
    assert default_threads(**kwargs) == expected


def test_without_affinity_the_online_cpus_count(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_machine(monkeypatch, cpus=6, load=1.0)
    monkeypatch.delattr(os, "sched_getaffinity")
    assert _threads._allowed_cpus() == 6
    assert default_threads() == 5


def _filter_args(argv: list[str]) -> argparse.Namespace:
    from locband.commands import filter_cmd

    parser = argparse.ArgumentParser()
    filter_cmd.add_args(parser)
    return parser.parse_args(["h1.mrc", "h2.mrc", *argv])


def test_filter_command_defaults_to_the_idle_cores_and_threads_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    from locband.commands.filter_cmd import request_from_args

    fake_machine(monkeypatch, cpus=12, load=2.2)
    assert request_from_args(_filter_args([])).job.engine.workers() == 10
    assert request_from_args(_filter_args(["--threads", "3"])).job.engine.workers() == 3
    assert request_from_args(_filter_args(["--threads", "30"])).job.engine.workers() == 30  # an explicit count


def test_relion_hook_shares_the_idle_cores_between_its_two_half_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    from locband.adapters.relion_extrec import call
    from locband.options import EngineSettings

    fake_machine(monkeypatch, cpus=16, load=2.0)

    class Req:
        engine = EngineSettings()
        case = "half"

    req: Any = Req()
    assert call._workers(req) == 7  # round(16 - 2) // 2
    req.case = "final"  # the final joined call runs alone
    assert call._workers(req) == 14
    req.engine = EngineSettings(threads=3)
    assert call._workers(req) == 3


@pytest.mark.parametrize(("j", "expected"), [(None, 6), ("2", 2), ("12", 6)])
def test_relion_external_j_caps_the_idle_cores(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                               j: str | None, expected: int) -> None:
    from locband import cli
    from locband.adapters.relion_external import job

    fake_machine(monkeypatch, cpus=8, load=2.0)
    seen: dict[str, Any] = {}

    def fake_filter_files(run: Any, **kwargs: Any) -> dict[str, Any]:
        seen["workers"] = run.engine.workers()
        raise ValueError("stop here")  # the job then fails with a one-line reason

    monkeypatch.setattr(job, "filter_files", fake_filter_files)
    for name in ("run_half1_class001_unfil.mrc", "run_half2_class001_unfil.mrc"):
        (tmp_path / name).write_bytes(b"")
    argv = ["--o", str(tmp_path / "out") + "/", "--in_3dref", str(tmp_path / "run_half1_class001_unfil.mrc")]
    cli.main(["relion-external", *argv, *(["--j", j] if j is not None else [])])
    assert seen["workers"] == expected


def test_loop_api_defaults_to_the_idle_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from locband.adapters.loop import RefinementFilter

    fake_machine(monkeypatch, cpus=4, load=1.0)
    assert RefinementFilter((16, 16, 16), pixel_size_angstrom=1.0)._filter.workers == 3
    assert RefinementFilter((16, 16, 16), pixel_size_angstrom=1.0, workers=2)._filter.workers == 2
