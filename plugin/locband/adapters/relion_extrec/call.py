"""One hook call: reconstruct, meet the other half, filter, write the map RELION reads, log."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from locband.adapters.relion_extrec.rendezvous import Rendezvous, report_failure
from locband.adapters.relion_extrec.request import ExtRecRequest, HookOptions, build_request, relion_ancestor
from locband.engine.local import LocalFilter
from locband.engine.params import GOLD_STANDARD_FSC, FilterResult
from locband.engine.reconstruct import reconstruct_from_sums
from locband.engine.units import fsc_resolution_angstrom
from locband.errors import InputFileError, OutputFileError, RendezvousError
from locband.io.mrc import read_map, write_map
from locband.io.outputs import same_file
from locband.io.paths import is_file, remove
from locband.io.procfs import process_seconds
from locband.io.relion_metadata import SEQUENTIAL_FLAG
from locband.io.relion_rendezvous import HOOK_LOG_NAME, PairFolder
from locband.io.relion_star import read_fourier_sums
from locband.io.summary import append_json_line

__all__ = ["run", "run_call", "check_outputs"]


def _load_mask(req: ExtRecRequest) -> npt.NDArray[np.float32] | None:
    if req.mask_path is None:
        return None
    m = read_map(req.mask_path, what="mask").data
    n = req.star.ori_size
    if m.shape != (n, n, n):
        raise InputFileError(f"mask {req.mask_path!r} has shape {m.shape}, but the references are {n}^3 voxels")
    return m


def _workers(req: ExtRecRequest) -> int:
    """The request's threads, or the idle cores shared by the calls that run at the same time."""
    return req.engine.workers(concurrent=2 if req.case == "half" else 1)


def _reconstruct(req: ExtRecRequest, *, regularised: bool) -> npt.NDArray[np.float32]:
    data, weight = read_fourier_sums(req.star)
    s = req.star
    return reconstruct_from_sums(data, weight, ori_size=s.ori_size, padding_factor=s.padding_factor,
                                 current_size=s.current_size, tau2=s.tau2 if regularised else None,
                                 tau2_fudge=s.tau2_fudge, workers=_workers(req), backend=req.engine.fft_backend)


def _filter(req: ExtRecRequest, h1: npt.NDArray[np.float32], h2: npt.NDArray[np.float32]) -> FilterResult:
    lf = LocalFilter(h1.shape, pixel_size_angstrom=req.pixel_size_angstrom, mask=_load_mask(req),
                     params=req.engine.params, workers=_workers(req), backend=req.engine.fft_backend,
                     device=req.engine.device)
    return lf(h1, h2)


def _previous_pair(req: ExtRecRequest) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    previous = req.name.iteration - 1
    files = PairFolder.of(req.job_dir, req.name, iteration=previous)
    maps = []
    for h in (1, 2):
        path = files.map_path(h)
        if not is_file(path):
            raise InputFileError(f"--final filter needs the unregularised half maps of iteration {previous}, but "
                                 f"{str(path)!r} does not exist (was the hook active in the previous iteration?); "
                                 "use --final plain")
        maps.append(read_map(path, what=f"half-{h} map of iteration {previous}").data)
    return maps[0], maps[1]


def _write_result(req: ExtRecRequest, vol: npt.NDArray[np.float32]) -> None:
    n = req.star.ori_size
    if vol.shape != (n, n, n):  # pragma: no cover - guarded by construction
        raise ValueError(f"result has shape {vol.shape}, expected {(n, n, n)}")
    write_map(req.star.result, vol, pixel_size_angstrom=req.pixel_size_angstrom)


def _summary(req: ExtRecRequest, result: FilterResult | None, seconds: float, mode: str) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "time_unix": time.time(), "star": req.star.path, "iteration": req.name.iteration, "half": req.name.half,
        req.name.kind: req.name.index, "case": req.case, "mode": mode, "result": req.star.result,
        "ori_size": req.star.ori_size, "current_size": req.star.current_size,
        "pixel_size_angstrom": req.pixel_size_angstrom, "pixel_size_source": req.pixel_size_source,
        "mask": req.mask_path, "symmetry": req.symmetry, "seconds": round(seconds, 3),
        "process_seconds": process_seconds(), "notes": list(req.notes),
    }
    if result is not None:
        res = result.local_resolution_angstrom
        rec.update({"n_bands": result.bands.n_bands,
                    "local_resolution_angstrom": {"min": float(res.min()), "p5": float(np.percentile(res, 5)),
                                                  "median": float(np.median(res)),
                                                  "p95": float(np.percentile(res, 95)), "max": float(res.max())},
                    # None: FSC below 0.143 from the first shell on; "fsc_0143_crossing" says whether a
                    # value is a crossing or the last shell as a bound (FSCCurve.crossing_status)
                    **_fsc_fields(result, req),
                    "params": result.params.to_dict(), "timings": result.timings})
    return rec


def _fsc_fields(result: FilterResult, req: ExtRecRequest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for which, curve in (("unmasked", result.fsc_unmasked), ("masked", result.fsc_masked)):
        value, status = (None, None) if curve is None else fsc_resolution_angstrom(
            curve, GOLD_STANDARD_FSC, pixel_size_angstrom=req.pixel_size_angstrom)
        out[f"fsc_0143_angstrom_{which}"] = value
        out[f"fsc_0143_crossing_{which}"] = status
    return out


def _line(req: ExtRecRequest, rec: dict[str, Any]) -> str:
    who = f"it{req.name.iteration:03d}"
    who += f" half{req.name.half}" if req.name.half else ""
    who += f" {req.name.kind}{req.name.index:03d}" if (req.name.kind == "body" or req.name.index > 1) else ""
    secs = f"{rec['seconds']:.1f} s"
    if rec.get("process_seconds") is not None:
        secs += f" ({rec['process_seconds']:.1f} s with start-up)"
    if "n_bands" in rec:
        lr = rec["local_resolution_angstrom"]
        return (f"locband: {who}: {rec['n_bands']} bands, local resolution {lr['p5']:.1f}-{lr['p95']:.1f} Å "
                f"(5-95 %), {secs}")
    return f"locband: {who}: {rec['mode']}, {secs}"


def check_outputs(req: ExtRecRequest) -> None:
    """Refuse a call whose result (or feedback STAR file) would replace one of its inputs.

    ``rlnExtReconsResult`` is replaced and ``rlnExtReconsResultStarfile`` removed by every call;
    a STAR file written by hand may point either at the STAR file itself, the arrays or the mask.

    Raises
    ------
    OutputFileError
        The output and the input it would replace, both named.
    """
    s = req.star
    inputs = {"hook STAR file": s.path, "data array (real part)": s.data_real,
              "data array (imaginary part)": s.data_imag, "weight array": s.weight, "mask": req.mask_path}
    for label, target in (("rlnExtReconsResult", s.result), ("rlnExtReconsResultStarfile", s.result_star)):
        for what, path in inputs.items():
            if path and target and same_file(target, path):
                raise OutputFileError(f"{label} {target!r} in {s.path!r} is the {what} {path!r}: locband never "
                                     "writes over its inputs")


def _result(req: ExtRecRequest) -> tuple[FilterResult | None, npt.NDArray[np.float32], str]:
    """The map this call hands back to RELION, the filter's result (if it filtered) and what it did."""
    if req.case == "half":
        return _run_half(req)
    if req.case == "final" and req.final_mode == "filter":
        result = _filter(req, *_previous_pair(req))
        return result, result.full, f"final: local filter of the iteration-{req.name.iteration - 1} halves"
    mode = ("final: RELION's plain MAP reconstruction" if req.case == "final" else
            "no second half (classification or non-split run): plain MAP reconstruction")
    return None, _reconstruct(req, regularised=True), mode


def run(req: ExtRecRequest, *, print_line: Callable[[str], None] = print) -> dict[str, Any]:
    """Carry out one hook call: reconstruct, meet the other half, filter, write the result.

    Returns
    -------
    dict
        The JSON record also appended to the job's log.

    Raises
    ------
    InputFileError
        Bad input, a failed or missing other half, ``--sequential_halves_recons``.
    """
    t0 = time.perf_counter()
    try:
        check_outputs(req)
    except InputFileError as exc:  # the other half must not wait for us in vain
        if req.name.half is not None and is_file(req.star.data_real):
            Rendezvous(req.job_dir, req.name, req.star.data_real, timeout_s=1.0).fail(f"{type(exc).__name__}: {exc}")
        raise
    remove(req.star.result)  # never leave an older map for RELION to read
    if remove(req.star.result_star):  # RELION would read it as FSC/tau2 feedback: not ours, so not honest
        print_line(f"locband: removed {req.star.result_star} left by another program (locband never rewrites "
                   "RELION's FSC)")
    result, vol, mode = _result(req)
    _write_result(req, vol)
    rec = _summary(req, result, time.perf_counter() - t0, mode)
    append_json_line(req.job_dir / HOOK_LOG_NAME, rec)
    print_line(_line(req, rec))
    return rec


def _run_half(req: ExtRecRequest) -> tuple[FilterResult, npt.NDArray[np.float32], str]:
    if req.sequential:
        raise RendezvousError(
            f"relion_refine runs with {SEQUENTIAL_FLAG} (seen in {req.sequential}): the two half-set "
            "reconstructions then never run at the same time, so locband cannot filter them jointly. "
            f"Remove {SEQUENTIAL_FLAG} (it only saves memory), or unset RELION_EXTERNAL_RECONSTRUCT_EXECUTABLE")
    ancestor = relion_ancestor()
    rv = Rendezvous(req.job_dir, req.name, req.star.data_real, timeout_s=req.timeout_s,
                    watch_pid=ancestor[0] if ancestor else None, sequential_hint=req.sequential_hint)
    rv.begin()
    try:
        own = _reconstruct(req, regularised=False)
        rv.publish(own, pixel_size_angstrom=req.pixel_size_angstrom)
        other = rv.wait_for_partner()
        pair = (own, other) if req.name.half == 1 else (other, own)
        result = _filter(req, *pair)
    except BaseException as exc:
        rv.fail(f"{type(exc).__name__}: {exc}")
        raise
    rv.clean_older()
    vol = result.half1 if req.name.half == 1 else result.half2
    return result, vol, "half: joint local filter"


def run_call(options: HookOptions, *, print_line: Callable[[str], None] = print) -> dict[str, Any]:
    """One hook call from its options: read the request, then :func:`run` it.

    A call that fails before it meets the other half leaves a failure marker, so that the other
    half stops at once instead of waiting for its timeout.

    Raises
    ------
    InputFileError
        Bad input (STAR file, arrays, mask).
    RendezvousError
        The other half failed, never came, or cannot come.
    OutputFileError
        The result cannot be written (the message names the STAR file and the reason).
    """
    try:
        req = build_request(options)
    except (ValueError, TypeError, OSError) as exc:  # the other half must not wait for us in vain
        report_failure(options.star, f"{type(exc).__name__}: {exc}")
        raise
    try:
        return run(req, print_line=print_line)
    except OSError as exc:  # disk full, permissions: a one-line reason for run.err, not a traceback
        name = getattr(exc, "filename", None)
        raise OutputFileError(f"{options.star}: {exc.strerror or exc}" + (f" ({name})" if name else "")) from None
