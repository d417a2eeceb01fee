"""``locband cryosparc loop``: refinement -> filter -> refinement seeded with the filtered volume -> ...

Each finished step is recorded in a JSON state file (atomic writes) before the next starts, so
that running the same command again resumes: it waits for a queued refinement instead of
queueing another one. Each round is a whole refinement: cryoSPARC has no hook between its
internal iterations.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from locband import __version__
from locband.adapters.cryosparc.common import OUTPUT_NAME, LoopRequest
from locband.adapters.cryosparc.online import run_filter_job
from locband.adapters.cryosparc.session import api_call
from locband.errors import CryosparcJobError, InputFileError
from locband.io.summary import read_json_if_any, write_json

__all__ = ["run_loop", "loop_decision"]

_DONE = ("completed",)
_STOPPED = ("failed", "killed")


def loop_decision(resolutions: list[float], *, max_rounds: int, min_improvement_angstrom: float) -> str | None:
    """Why the loop stops now, or None to go on.

    ``resolutions[0]`` is the starting refinement's, ``resolutions[k]`` that of round k.
    """
    rounds = len(resolutions) - 1
    if rounds >= 1:
        best_before = min(resolutions[:-1])
        if resolutions[-1] > best_before - min_improvement_angstrom:
            return (f"resolution stopped improving: round {rounds} reached {resolutions[-1]:.3f} Å, best before "
                    f"{best_before:.3f} Å (needed {min_improvement_angstrom:g} Å better)")
    if rounds >= max_rounds:
        return f"reached the maximum of {max_rounds} rounds"
    return None


def _resolution(job: Any, output: str) -> float:
    try:
        stats = job.outputs[output].latest_summary_stats
        return float(stats["fsc_info_best"]["radwn_final_A"])
    except (KeyError, TypeError, ValueError):
        raise CryosparcJobError(f"job {job.uid} has no resolution in outputs[{output!r}].latest_summary_stats"
                                "['fsc_info_best']['radwn_final_A']") from None


def _wait(job: Any, req: LoopRequest) -> None:
    t0 = time.monotonic()
    while True:
        job.refresh()
        if job.status in _DONE:
            return
        if job.status in _STOPPED:
            raise CryosparcJobError(f"refinement job {job.uid} ended with status {job.status!r}; fix it in cryoSPARC "
                                    "and run the same command again to resume")
        if job.status == "building":
            job.queue(req.lane)
        if req.timeout_seconds is not None and time.monotonic() - t0 > req.timeout_seconds:
            raise CryosparcJobError(f"refinement job {job.uid} still {job.status!r} after {req.timeout_seconds:g} s; "
                                    "run the same command again later to resume")
        time.sleep(req.poll_seconds)


def _new_state(req: LoopRequest) -> dict[str, Any]:
    f = req.filter
    return {"locband_version": __version__, "project": f.project, "workspace": f.workspace, "start_job": f.job,
            "refine_type": req.refine_type, "rounds": [], "current": None, "finished": False, "stop_reason": None}


def _load_state(path: Path, req: LoopRequest) -> dict[str, Any]:
    try:
        state = read_json_if_any(path)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"loop state file {str(path)!r} is unreadable: {exc}") from None
    if state is None:
        return _new_state(req)
    f = req.filter
    mine = {"project": f.project, "workspace": f.workspace, "start_job": f.job}
    theirs = {k: state.get(k) for k in mine}
    if theirs != mine:
        raise InputFileError(f"loop state file {str(path)!r} belongs to another loop ({theirs}, this one is {mine}); "
                             "give another --state file")
    return state


class _Loop:
    """One run of the loop: the session, the request, the state and where it is saved."""

    def __init__(self, cs: Any, req: LoopRequest, state_path: Path, say: Callable[[str], None]) -> None:
        self.cs, self.req, self.state_path, self.say = cs, req, state_path, say
        self.state = _load_state(state_path, req)

    def save(self) -> None:
        write_json(self.state_path, self.state)

    def start(self) -> None:
        """Round 0: the starting refinement (queued if it is still building), and its resolution."""
        f = self.req.filter
        start = api_call(f"job {f.job} in project {f.project}", lambda: self.cs.find_job(f.project, f.job))
        _wait(start, self.req)
        self.state["rounds"].append({"round": 0, "refine_job": start.uid,
                                     "resolution_angstrom": _resolution(start, f.output)})
        self.save()
        self.say(f"round 0: {start.uid} at {self.state['rounds'][0]['resolution_angstrom']:.3f} Å")

    def refinement(self, project: Any, prev: str, cur: dict[str, Any]) -> None:
        """Create and queue the round's refinement, seeded with the filtered volume."""
        f, req = self.req.filter, self.req
        prev_job = self.cs.find_job(f.project, prev)
        conns: dict[str, Any] = {"particles": (prev, "particles"), "volume": (cur["filter_job"], OUTPUT_NAME)}
        if "mask" in prev_job.outputs:
            conns["mask"] = (prev, "mask")
        job = project.create_job(f.workspace, req.refine_type, connections=conns, params=dict(req.refine_params),
                                 title=f"locband loop round {cur['round']}")
        cur["refine_job"] = job.uid
        self.save()
        job.queue(req.lane)
        self.say(f"round {cur['round']}: queued {req.refine_type} {job.uid}")

    def round(self, project: Any) -> None:
        """Filter the latest refinement, refine from it, wait; each step saved before the next."""
        f = self.req.filter
        prev = self.state["rounds"][-1]["refine_job"]
        cur = self.state["current"] or {"round": len(self.state["rounds"]), "filter_job": None, "refine_job": None}
        if cur["filter_job"] is None:
            step = run_filter_job(self.cs, dataclasses.replace(f, job=prev))
            cur["filter_job"] = step["external_job"]
            self.state["current"] = cur
            self.save()
            self.say(f"round {cur['round']}: filtered {prev} into {cur['filter_job']}")
        if cur["refine_job"] is None:
            self.refinement(project, prev, cur)
        job = self.cs.find_job(f.project, cur["refine_job"])
        _wait(job, self.req)
        self.state["rounds"].append({"round": cur["round"], "filter_job": cur["filter_job"], "refine_job": job.uid,
                                     "resolution_angstrom": _resolution(job, f.output)})
        self.state["current"] = None
        self.save()
        self.say(f"round {cur['round']}: {job.uid} at {self.state['rounds'][-1]['resolution_angstrom']:.3f} Å")


def run_loop(cs: Any, req: LoopRequest, state_path: Path, *,
             report: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Alternate filter and refinement until the resolution stops improving or ``max_rounds``.

    Each finished step is written to ``state_path`` (JSON, atomic) before the next starts; a
    re-run with the same state file resumes where the last one stopped, waiting for a queued
    refinement rather than queueing it again.

    Returns
    -------
    dict
        The final state: rounds with their jobs and resolutions, and the reason to stop.
    """
    loop = _Loop(cs, req, state_path, report or (lambda msg: None))
    state = loop.state
    if state["finished"]:
        loop.say(f"loop already finished: {state['stop_reason']}")
        return state
    project = api_call(f"project {req.filter.project}", lambda: cs.find_project(req.filter.project))
    if not state["rounds"]:
        loop.start()
    while True:
        res = [r["resolution_angstrom"] for r in state["rounds"]]
        reason = loop_decision(res, max_rounds=req.max_rounds, min_improvement_angstrom=req.min_improvement_angstrom)
        if reason is not None:
            state.update(finished=True, stop_reason=reason, current=None)
            loop.save()
            loop.say(f"stop: {reason}")
            return state
        loop.round(project)
