"""The CCP-EM jobs' option and output tables, derived from locband's own (:mod:`locband.options`).

A job option becomes a ``locband`` argument (:func:`build_arguments`) and a pipeliner job option
(:func:`job_option`); an output file becomes a typed pipeliner node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeliner.job_options import (
    BooleanJobOption,
    FileDescription,
    FloatJobOption,
    InputNodeJobOption,
    IntJobOption,
    JobOption,
    JobOptionCondition,
    MultipleChoiceJobOption,
)
from pipeliner.nodes import NODE_DENSITYMAP, NODE_IMAGE3D, NODE_LOGFILE, NODE_MASK3D, NODE_PROCESSDATA

from locband import interpretation, options
from locband.engine.params import FilterParams
from locband.output_names import DENOISE as DENOISE_NAMES
from locband.output_names import FILTER as OUTPUT_NAMES

__all__ = ["JobField", "Output", "FILTER_OPTIONS", "FILTER_OUTPUTS", "DENOISE_OPTIONS", "DENOISE_OUTPUTS",
           "build_arguments", "params_from_values", "job_option"]

_MAP_FILES = FileDescription("3D map", [".mrc", ".map"])
_SETTINGS = "Filter settings"
_INTERPRETATION = "Interpretation map"
_AUTO = "auto"


@dataclass(frozen=True)
class JobField:
    """One job option and the ``locband`` argument it becomes (derived from :class:`locband.options.Option`).

    Attributes
    ----------
    flag : str
        The ``locband`` flag (``--band-ratio``), or the metavar of a positional argument
        (``HALF1``).
    kind : str
        ``halfmap`` (required map input), ``mask`` (optional mask input), ``number`` (blank
        leaves the flag out), ``integer`` (likewise), ``switch`` (the flag is given for yes),
        ``no-switch`` (the flag is given for no), ``choice`` (``auto`` leaves the flag out) or
        ``threads`` (the pipeliner's own ``nr_threads``).
    label : str
        Label in the GUI.
    help : str
        Help text in the GUI.
    params_field : str or None
        The :class:`~locband.engine.params.FilterParams` field whose default the option shows
        and which the option sets; None for options that are not engine settings.
    choices : tuple of str
        Values of a ``choice`` option besides ``auto``.
    step : float
        Step of a ``number`` slider in the GUI.
    group : str
        Group of options in the GUI.
    default : object
        The default shown when the option is no engine setting (``params_field`` None).
    """

    flag: str
    kind: str
    label: str
    help: str
    params_field: str | None = None
    choices: tuple[str, ...] = ()
    step: float = 0.01
    group: str = "Main"
    default: Any = None


@dataclass(frozen=True)
class Output:
    """One output file of a job and its pipeliner node.

    Attributes
    ----------
    name : str
        File name inside the job folder.
    node_type : str
        Top-level node type (``DensityMap``, ``Image3D``, ...).
    keywords : tuple of str
        Node keywords: the full type is ``<node_type>.<format>.<keywords joined by dots>``.
    only_if : str or None
        A yes/no job option that must be yes for the file to be written.
    """

    name: str
    node_type: str
    keywords: tuple[str, ...]
    only_if: str | None = None


#: locband's option kinds -> the job option kinds above
_KINDS = {"number": "number", "positive": "number", "integer": "integer", "switch": "switch",
          "switch-off": "no-switch", "choice": "choice", "count": "threads", "path": "mask"}


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _field(option: options.Option, *, kind: str | None = None, group: str = _SETTINGS) -> JobField:
    """The job option for one row of locband's option table."""
    return JobField(flag=option.metavar or option.name if option.positional else option.cli_flag,
                    kind=kind or _KINDS[option.kind], label=option.label, help=_sentence(option.help),
                    params_field=option.params_field, choices=option.choices, step=option.step, group=group,
                    default=None if option.params_field else option.default)


_THREADS = options.by_name(options.ENGINE)["threads"]
#: job option -> ``locband filter`` argument
FILTER_OPTIONS: dict[str, JobField] = {
    "half_map_1": _field(options.HALF1, kind="halfmap", group="Main"),
    "half_map_2": _field(options.HALF2, kind="halfmap", group="Main"),
    "mask": _field(options.MASK, group="Main"),
    "pixel_size": _field(options.PIXEL_SIZE, group="Main"),
    **{o.name: _field(o) for o in options.ENGINE if o is not _THREADS},
    "report": _field(options.REPORT),
    "nr_threads": _field(_THREADS, group="Main"),  # the pipeliner's own "Number of threads" (run tab)
}

#: output kind -> file (as ``locband filter`` names it) and node
FILTER_OUTPUTS: dict[str, Output] = {
    "full": Output(OUTPUT_NAMES["full"], NODE_DENSITYMAP, ("locband", "localfilter")),
    "half1": Output(OUTPUT_NAMES["half1"], NODE_DENSITYMAP, ("locband", "localfilter", "halfmap")),
    "half2": Output(OUTPUT_NAMES["half2"], NODE_DENSITYMAP, ("locband", "localfilter", "halfmap")),
    "local_resolution": Output(OUTPUT_NAMES["local_resolution"], NODE_IMAGE3D, ("locband", "localresmap")),
    "band_snr": Output(OUTPUT_NAMES["band_snr"], NODE_IMAGE3D, ("locband", "bandsnr"), only_if="band_snr"),
    "summary": Output(OUTPUT_NAMES["summary"], NODE_PROCESSDATA, ("locband", "summary")),
    "report_pdf": Output(OUTPUT_NAMES["report_pdf"], NODE_LOGFILE, ("locband", "report"), only_if="report"),
}

#: job option -> ``locband denoise`` argument: the half-maps, mask and voxel size, the interpretation
#: map's settings (:data:`locband.options.DENOISE`), the engine's that apply to it, the report, threads
DENOISE_OPTIONS: dict[str, JobField] = {
    "half_map_1": FILTER_OPTIONS["half_map_1"],
    "half_map_2": FILTER_OPTIONS["half_map_2"],
    "mask": _field(interpretation.MASK_OPTION, group="Main"),
    "pixel_size": FILTER_OPTIONS["pixel_size"],
    **{o.name: _field(o, group=_INTERPRETATION) for o in options.DENOISE},
    **{o.name: _field(o) for o in interpretation.ENGINE_OPTIONS if o is not _THREADS},
    "report": _field(options.REPORT),
    "nr_threads": FILTER_OPTIONS["nr_threads"],
}

#: output kind -> file (as ``locband denoise`` names it) and node. The halves, each processed on its
#: own, are for cross-validation: no ``halfmap`` keyword (averaging them or taking their FSC as a
#: resolution would be wrong for non-linear maps)
DENOISE_OUTPUTS: dict[str, Output] = {
    "full": Output(DENOISE_NAMES["full"], NODE_DENSITYMAP, ("locband", "denoised")),
    "half1": Output(DENOISE_NAMES["half1"], NODE_DENSITYMAP, ("locband", "denoised", "crossvalidation")),
    "half2": Output(DENOISE_NAMES["half2"], NODE_DENSITYMAP, ("locband", "denoised", "crossvalidation")),
    "local_resolution": Output(DENOISE_NAMES["local_resolution"], NODE_IMAGE3D, ("locband", "localresmap")),
    "summary": Output(DENOISE_NAMES["summary"], NODE_PROCESSDATA, ("locband", "denoised", "summary")),
    "report_pdf": Output(DENOISE_NAMES["report_pdf"], NODE_LOGFILE, ("locband", "denoised", "report"),
                         only_if="report"),
}


def job_option(name: str, opt: JobField, defaults: FilterParams) -> JobOption[Any]:
    """The pipeliner job option for one row of an option table."""
    default = getattr(defaults, opt.params_field) if opt.params_field else opt.default
    common: dict[str, Any] = {"label": opt.label, "help_text": opt.help, "jobop_group": opt.group}
    if opt.kind == "halfmap":
        return InputNodeJobOption(node_type=NODE_DENSITYMAP, node_kwds=["halfmap"], pattern=_MAP_FILES,
                                  is_required=True, **common)
    if opt.kind == "mask":
        return InputNodeJobOption(node_type=NODE_MASK3D, pattern=_MAP_FILES, **common)
    if opt.kind == "number":
        return FloatJobOption(default_value=None if default is None else float(default), step_value=opt.step,
                              **common)
    if opt.kind == "integer":
        return IntJobOption(default_value=None if default is None else int(default), **common)
    if opt.kind == "switch":
        deactivate = JobOptionCondition([("mask", "=", "")]) if opt.params_field == "apply_mask" else None
        return BooleanJobOption(default_value=bool(default), deactivate_if=deactivate, **common)
    if opt.kind == "no-switch":
        return BooleanJobOption(default_value=True, **common)
    if opt.kind == "choice":
        return MultipleChoiceJobOption(choices=[_AUTO, *opt.choices], default_value=_AUTO, **common)
    raise ValueError(f"option {name!r}: unknown kind {opt.kind!r}")


def build_arguments(options: Mapping[str, JobField], values: Mapping[str, Any]) -> list[str]:
    """The ``locband`` arguments for job option values; pure.

    Parameters
    ----------
    options : mapping
        An option table (:data:`FILTER_OPTIONS`, :data:`DENOISE_OPTIONS`).
    values : mapping
        Job option name -> value as the pipeliner holds it (str, float or None, bool, int).

    Returns
    -------
    list of str
        Positional arguments first, in table order, then the flags in table order.
    """
    positional: list[str] = []
    flags: list[str] = []
    for name, opt in options.items():
        value = values.get(name)
        if opt.kind == "halfmap":
            positional.append(str(value))
        elif opt.kind in ("mask", "number", "integer", "threads"):
            if value not in (None, ""):
                flags += [opt.flag, str(value)]
        elif opt.kind == "choice":
            if value not in (None, "", _AUTO):
                flags += [opt.flag, str(value)]
        elif (opt.kind == "switch" and value) or (opt.kind == "no-switch" and not value):
            flags.append(opt.flag)
    return positional + flags


def params_from_values(options: Mapping[str, JobField], values: Mapping[str, Any]) -> FilterParams:
    """The :class:`~locband.engine.params.FilterParams` that job option values ask for.

    Raises
    ------
    ValueError
        A value out of range (locband's own message, naming the field).
    """
    kwargs = {opt.params_field: values[name] for name, opt in options.items()
              if opt.params_field and values.get(name) is not None}
    return FilterParams(**kwargs)
