"""The options a user can set, declared once: engine settings, run settings, and how to read them.

Every host offers the same settings under its own spelling: ``locband filter --band-ratio 1.5``,
the RELION External job's parameter ``band_ratio``, the CCP-EM job option ``band_ratio``, the
cryoSPARC template's ``--band-ratio``. Each setting is one :class:`Option` here; the hosts'
tables (the command modules, :mod:`locband.adapters.ccpem`) list which options they offer and
derive their parsers, help texts and GUI fields from these rows, and ``tests/test_options.py``
runs one suite over every host and every option.

:data:`ENGINE` holds what the engine needs (:class:`EngineSettings`); a new engine option is
one row there and one field of :class:`EngineSettings` (``--device`` is such a row).
:data:`DENOISE` holds what an interpretation map needs besides (:class:`DenoiseSettings`):
``locband denoise`` offers it, and every host that filters offers it behind one switch,
:data:`INTERPRETATION` (the interpretation map made beside the linear filter's maps, never
instead of them, never for the refinement hook or loop).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from locband._threads import default_threads
from locband.engine import DenoiseParams, FilterParams
from locband.errors import OptionError

__all__ = ["Option", "EngineSettings", "ENGINE", "HALF1", "HALF2", "PIXEL_SIZE", "MASK", "REPORT", "QUIET", "OUT_DIR",
           "DENOISE", "INTERPRETATION", "DenoiseSettings", "by_name",
           "add_arguments", "values_from_namespace", "KINDS"]

#: kind -> what a value is
KINDS = {
    "number": "a number",
    "positive": "a number > 0",
    "count": "an integer >= 1",
    "integer": "an integer",
    "switch": "yes or no; on the command line the flag means yes",
    "switch-off": "yes or no; on the command line the flag (--no-...) means no",
    "choice": "one of the choices; no value means automatic",
    "path": "a file or folder",
    "text": "text",
    "list": "text, repeatable",
}
_YES = {"", "yes", "y", "true", "t", "1", "on"}
_NO = {"no", "n", "false", "f", "0", "off"}


@dataclass(frozen=True)
class Option:
    """One setting, whatever the host.

    Attributes
    ----------
    name : str
        The request field it sets; also the RELION External-job label and the CCP-EM job
        option where those hosts offer it.
    kind : str
        A key of :data:`KINDS`.
    help : str
        One sentence for ``--help`` and GUI help (without the default, which is added).
    label : str
        Short label for a GUI field.
    metavar : str
        Placeholder in ``--help``.
    default : object
        Value when the option is not given (for engine settings, :class:`FilterParams`' own).
    params_field : str or None
        The :class:`~locband.engine.params.FilterParams` field it sets, if any.
    choices : tuple of str
        Values of a ``choice``.
    flag : str or None
        The command-line flag; None: ``--`` + the name with dashes; ``""``: a positional argument.
    unit : str
        Unit named in messages (``Å``).
    step : float
        Step of a GUI slider.
    required : bool
        The command line cannot do without it.
    """

    name: str
    kind: str
    help: str
    label: str = ""
    metavar: str | None = None
    default: Any = None
    params_field: str | None = None
    choices: tuple[str, ...] = ()
    flag: str | None = None
    unit: str = ""
    step: float = 0.01
    required: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"option {self.name!r}: unknown kind {self.kind!r}")

    @property
    def cli_flag(self) -> str:
        """The command-line spelling: ``--band-ratio`` (``--no-report`` for a ``switch-off``), or the name."""
        if self.flag is not None:
            return self.flag or self.name
        return "--" + ("no-" if self.kind == "switch-off" else "") + self.name.replace("_", "-")

    @property
    def positional(self) -> bool:
        """A positional argument of the command line."""
        return self.flag == ""

    def parse_text(self, raw: str, *, called: str) -> Any:
        """Convert a text value (a RELION job parameter) to the option's type and check it.

        ``called`` names the option in messages (``job parameter --band_ratio``).

        Raises
        ------
        OptionError
            Not of the option's kind or out of its range; the message names the option.
        """
        if self.kind in ("switch", "switch-off"):
            low = raw.strip().lower()
            if low in _YES or low in _NO:
                return low in _YES
            raise OptionError(f"{called} must be yes or no, got {raw!r}")
        if raw.strip() == "":
            raise OptionError(f"{called} needs a value (set paramN_value), got nothing")
        if self.kind == "choice" and raw not in self.choices:
            raise OptionError(f"{called} must be one of {', '.join(self.choices)}, got {raw!r}")
        if self.kind in ("number", "positive"):
            try:
                value: Any = float(raw)
            except ValueError:
                raise OptionError(f"{called} must be a number, got {raw!r}") from None
            return self.check(value, called=called, shown=repr(raw))
        if self.kind in ("count", "integer"):
            try:
                value = int(raw)
            except ValueError:
                value = None
            if value is None or (self.kind == "count" and value < 1):
                raise OptionError(f"{called} must be {KINDS[self.kind]}, got {raw!r}")
            return value
        return raw

    def check(self, value: Any, *, called: str | None = None, shown: str | None = None) -> Any:
        """Check the range of a parsed value (``positive`` > 0, ``count`` >= 1); returns it.

        Raises
        ------
        OptionError
            Out of range; the message names ``called`` (default: the command-line flag).
        """
        called = called or self.cli_flag
        shown = shown or str(value)
        unit = f" {self.unit}" if self.unit else ""
        if value is None:
            return value
        if self.kind == "positive" and not (math.isfinite(value) and value > 0):
            raise OptionError(f"{called} must be > 0{unit}, got {shown}")
        if self.kind == "count" and value < 1:
            raise OptionError(f"{called} must be >= 1, got {shown}")
        return value

    def help_text(self) -> str:
        """``help`` with the default, as ``--help`` shows it."""
        if self.kind in ("switch", "switch-off", "list") or self.default is None or self.required:
            return self.help
        shown = f"{self.default:.5g}" if isinstance(self.default, float) else str(self.default)
        return f"{self.help} (default {shown}{' ' + self.unit if self.unit else ''})"


def _engine(name: str, kind: str, help: str, label: str, *, params_field: str | None = None, **more: Any) -> Option:
    """An engine option; a FilterParams field gives its default."""
    default = getattr(FilterParams(), params_field) if params_field else more.pop("default", None)
    return Option(name, kind, help, label, params_field=params_field, default=default, **more)


#: the engine's settings: every host that filters offers all of them
ENGINE: tuple[Option, ...] = (
    _engine("band_ratio", "number", "ratio between the centres of neighbouring frequency bands (> 1); 2^(1/3) "
            "gives three bands per octave", "Band ratio", params_field="band_ratio", metavar="R"),
    _engine("window_wavelengths", "number", "Gaussian sigma of each band's local window, in wavelengths of the "
            "band (capped at 10 % of the box edge)", "Window (wavelengths)", params_field="window_wavelengths",
            metavar="K", step=0.1),
    _engine("noise_threshold", "number", "local signal within this many standard deviations of its pure-noise "
            "fluctuation is suppressed", "Noise threshold (SD)", params_field="noise_threshold", metavar="Z",
            step=0.1),
    _engine("criterion", "number", "local half-map FSC threshold that defines the local resolution",
            "Local FSC criterion", params_field="criterion", metavar="C", step=0.001),
    _engine("apply_mask", "switch", "multiply the filtered maps by the mask", "Apply mask to outputs?",
            params_field="apply_mask"),
    _engine("band_snr", "switch", "also write band_snr.mrc, the local SNR of every band (a volume stack)",
            "Write per-band SNR?", params_field="keep_band_snr"),
    _engine("fft_backend", "choice", "FFT implementation on the CPU (default: scipy)", "FFT backend",
            choices=("pyfftw", "scipy"), metavar="NAME"),
    _engine("device", "choice", "where to filter: cpu, or cuda for an NVIDIA GPU (needs pip install "
            "'locband[gpu]')", "Device", choices=("cpu", "cuda"), default="cpu"),
    _engine("threads", "count", "threads (default: the idle cores this process may use, from the CPU affinity "
            "and the 1-minute load average; threads competing with busy processes run many times slower)",
            "Number of threads", metavar="N"),
)

#: the interpretation map's own settings, in physical units (the band options are :data:`ENGINE`'s)
DENOISE: tuple[Option, ...] = (
    Option("sharpen", "switch-off", "no sharpening (default: local sharpening)", "Sharpen?", default=True),
    Option("bfactor", "number", "one global B-factor in Å² instead of local sharpening (negative sharpens, as in "
           "RELION's postprocessing)", "Global B-factor (Å²)", metavar="B"),
    Option("molecular_mass_kda", "positive", "mass of the molecule in kDa: its volume (1.23 Å³/Da) sets the solvent "
           "boundary", "Molecular mass (kDa)", metavar="K"),
    Option("sharpen_from", "positive", "local sharpening restores the fall-off beyond this resolution in Å",
           "Sharpen from (Å)", default=10.0, metavar="A", unit="Å", step=0.5),
    Option("positivity", "switch-off", "do not assume density above the solvent level", "Positivity prior?",
           default=True),
    Option("solvent_flattening", "switch-off", "do not assume a flat solvent", "Flat solvent prior?", default=True),
    Option("connectivity", "switch-off", "keep small isolated blobs", "Connectivity prior?", default=True),
    Option("consistency", "switch-off", "keep what only one half shows (default: the average is not trusted where "
           "the halves differ beyond their noise)", "Half-map consistency?", default=True),
    Option("linear_weights", "switch", "no significance weighting: the linear filter's weights (the priors then "
           "act only through the flat solvent)", "Linear weights only?", default=False),
    Option("cycles", "integer", "density-modification cycles (more measured no better, see the README)",
           "Cycles", default=1, metavar="N"),
)
#: a filter run that also makes the interpretation map (the hosts' switch; never the refinement hook)
INTERPRETATION = Option("interpretation", "switch", "also make the interpretation map (denoised.mrc, as locband "
                        "denoise): non-linear, for model building and viewing only, never averaged again or used "
                        "as a refinement reference", "Interpretation map?", default=False)

#: the two half-maps of a filter run (positional on the command line)
HALF1 = Option("half1", "path", "half-map 1 (MRC), unfiltered and unmasked, e.g. run_half1_class001_unfil.mrc of a "
               "3D refinement", "Half map 1", flag="", metavar="HALF1", required=True)
HALF2 = Option("half2", "path", "half-map 2 (MRC), unfiltered and unmasked", "Half map 2", flag="", metavar="HALF2",
               required=True)
#: the voxel size of the half-maps, when their headers are wrong or say 0
PIXEL_SIZE = Option("pixel_size", "positive", "voxel size in Å (default: from the half-map headers)",
                    "Pixel size (Å)", metavar="A", unit="Å")
#: a soft mask around the particle
MASK = Option("mask", "path", "soft mask in [0, 1] (MRC): gives the masked FSC and the local-resolution "
              "histogram within the mask, and is applied to the outputs with --apply-mask; the filter itself "
              "needs no mask", "Mask (optional)", metavar="MASK")
#: draw report.png and report.pdf
REPORT = Option("report", "switch-off", "skip the PNG/PDF report (and remove an earlier run's)",
                "Write report (PNG/PDF)?", default=True)
#: no progress lines
QUIET = Option("quiet", "switch", "no progress output", default=False)
#: the output folder of a command
OUT_DIR = Option("out_dir", "path", "output folder", metavar="DIR")


def by_name(options: Iterable[Option]) -> dict[str, Option]:
    """``{option.name: option}``."""
    return {o.name: o for o in options}


@dataclass(frozen=True)
class EngineSettings:
    """What the engine is asked to do, from :data:`ENGINE`: the same for every host.

    Attributes
    ----------
    params : FilterParams
        The filter's settings.
    threads : int or None
        Threads; None: the idle cores when the filter starts (:meth:`workers`).
    fft_backend : str or None
        ``"pyfftw"``, ``"scipy"`` or None (the engine's default, scipy).
    device : str
        ``"cpu"``, or ``"cuda"`` for a GPU.
    """

    params: FilterParams = field(default_factory=FilterParams)
    threads: int | None = None
    fft_backend: str | None = None
    device: str = "cpu"

    def workers(self, *, concurrent: int = 1, limit: int | None = None) -> int:
        """The threads to filter with: :attr:`threads` if given, else the idle cores now.

        ``concurrent`` filters starting at the same time share the idle cores (the RELION hook's
        two half-set calls); ``limit`` caps them (RELION's ``--j``). See
        :func:`locband._threads.default_threads`.
        """
        if self.threads is not None:
            return self.threads
        return default_threads(limit=limit, concurrent=concurrent)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> EngineSettings:
        """Settings from option values by :data:`ENGINE` name; missing or None values take the defaults.

        Raises
        ------
        ValueError
            A setting out of the engine's range (:class:`FilterParams`' message, naming the field).
        OptionError
            A thread count below 1.
        """
        given = {o.name: values[o.name] for o in ENGINE if values.get(o.name) is not None}
        params = FilterParams(**{o.params_field: given[o.name] for o in ENGINE if o.params_field and o.name in given})
        own = {f.name for f in fields(cls)} - {"params"}
        rest = {name: by_name(ENGINE)[name].check(value) for name, value in given.items() if name in own}
        return cls(params=params, **rest)


@dataclass(frozen=True)
class DenoiseSettings:
    """What an interpretation map is asked for, from :data:`DENOISE`: the same for every host.

    Physical units (``molecular_mass_kda``, ``bfactor_angstrom2`` instead of local sharpening,
    ``sharpen_from_angstrom``); ``significance`` is False for ``linear_weights``.
    :class:`locband.interpretation.DenoiseJob` makes :class:`~locband.engine.denoise_params.DenoiseParams`
    of them at the voxel size of the maps.
    """

    molecular_mass_kda: float | None = None
    bfactor_angstrom2: float | None = None
    sharpen: bool = True
    sharpen_from_angstrom: float = 10.0
    cycles: int = 1
    positivity: bool = True
    solvent_flattening: bool = True
    connectivity: bool = True
    consistency: bool = True
    significance: bool = True

    @classmethod
    def from_values(cls, values: Mapping[str, Any], *, called: Mapping[str, str] | None = None) -> DenoiseSettings:
        """Settings from option values by :data:`DENOISE` name; missing or None values take the defaults.

        ``called`` names the options in messages (default: their command-line flags).

        Raises
        ------
        OptionError
            A value out of range, or a global B-factor together with no sharpening.
        """
        rows = by_name(DENOISE)
        v = {name: rows[name].check(values[name], called=(called or {}).get(name)) for name in rows
             if values.get(name) is not None}
        if v.get("bfactor") is not None and v.get("sharpen") is False:
            names = called or {n: rows[n].cli_flag for n in ("bfactor", "sharpen")}
            raise OptionError(f"{names['bfactor']} (one global B-factor) and {names['sharpen']} (no sharpening) "
                              "exclude each other: choose one")
        try:  # the engine's own range, checked now (the cycles)
            DenoiseParams(cycles=v.get("cycles", 1))
        except ValueError as exc:
            raise OptionError(f"{(called or {}).get('cycles', rows['cycles'].cli_flag)}: {exc}") from None
        renamed = {"bfactor": "bfactor_angstrom2", "sharpen_from": "sharpen_from_angstrom"}
        kwargs = {renamed.get(k, k): val for k, val in v.items() if k != "linear_weights"}
        return cls(**kwargs, significance=not v.get("linear_weights", False))

    @classmethod
    def when_asked(cls, values: Mapping[str, Any], *, called: Mapping[str, str] | None = None
                   ) -> DenoiseSettings | None:
        """The settings when :data:`INTERPRETATION` is on, else None (a host's request).

        Raises
        ------
        OptionError
            A :data:`DENOISE` setting given (not its default) with the switch off; a bad value.
        """
        if values.get(INTERPRETATION.name):
            return cls.from_values(values, called=called)
        given = [o for o in DENOISE if values.get(o.name) is not None and values[o.name] != o.default]
        if given:
            name = (called or {}).get(given[0].name, given[0].cli_flag)
            switch = (called or {}).get(INTERPRETATION.name, INTERPRETATION.cli_flag)
            raise OptionError(f"{name} is a setting of the interpretation map, which is off: turn on {switch}, "
                              "or leave it out")
        return None


def add_arguments(parser: argparse.ArgumentParser | Any, options: Iterable[Option]) -> None:
    """Register options with an argparse parser (or argument group): flags, types, defaults, help."""
    for o in options:
        kw: dict[str, Any] = {"help": o.help_text().replace("%", "%%")}  # argparse formats help with %
        if o.kind in ("switch", "switch-off"):
            kw.update(action="store_true" if o.kind == "switch" else "store_false",
                      default=o.default if o.default is not None else o.kind == "switch-off")
        elif o.kind == "list":
            kw.update(action="append", default=[], metavar=o.metavar)
        else:
            kw.update(metavar=o.metavar, default=o.default,
                      type={"number": float, "positive": float, "count": int, "integer": int}.get(o.kind, str))
            if o.choices:
                kw.update(choices=o.choices, metavar=None)
        if o.positional:
            kw.pop("default", None)
            parser.add_argument(o.name, **kw)
        else:
            if o.required:
                kw["required"] = True
            parser.add_argument(o.cli_flag, dest=o.name, **kw)


def values_from_namespace(args: argparse.Namespace, options: Iterable[Option]) -> dict[str, Any]:
    """``{name: value}`` of parsed options, each range-checked (:meth:`Option.check`)."""
    return {o.name: o.check(getattr(args, o.name)) for o in options}
