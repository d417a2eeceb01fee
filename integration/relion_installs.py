"""The RELION installations the integration tests run against, each found explicitly.

* RELION 3.1: the programs on ``PATH`` (Debian's ``relion``, 3.1.3), checked to say 3.1.
* RELION 5.0.1: the folder named by ``LOCBAND_RELION5_BIN`` (``.ci/run`` builds it with
  ``../shared/relion5/build.sh`` and sets the variable), put first on ``PATH`` for every program a
  test starts: mpirun and its ranks, relion_pipeliner and the jobs it runs, relion_schemer.

Each test that runs RELION is parametrised over both (ids ``relion3.1`` and ``relion5.0.1``). An
installation that is missing or reports another version makes its cases skip with the reason;
under ``CI=true`` that skip is a failure (the repository's ``conftest.py``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["RELION5_BIN_ENV", "RelionInstall", "INSTALLS", "star_version", "check_install", "require"]

#: The environment variable naming the bin folder of a RELION 5.0.1 build.
RELION5_BIN_ENV = "LOCBAND_RELION5_BIN"
#: Programs every case needs (relion_schemer / relion_scheduler only where a test uses them).
PROGRAMS = ("relion_project", "relion_refine_mpi", "relion_external_reconstruct", "relion_pipeliner", "mpirun")


@dataclass(frozen=True)
class RelionInstall:
    """One RELION installation.

    Attributes
    ----------
    name : str
        ``"3.1"`` or ``"5.0.1"``: the parameter id.
    version_prefix : str
        What ``relion_refine_mpi --version`` must report (``3.1.`` or ``5.0.1``).
    star_version : int
        The ``# version NNNNN`` line of every STAR file this RELION writes (``CURRENT_MDT_VERSION``:
        30001 in 3.1, 50001 in 5.0), which tells which RELION wrote a file.
    bin_dir : Path or None
        Folder put first on ``PATH``; None: ``PATH`` as it is.
    """

    name: str
    version_prefix: str
    star_version: int
    bin_dir: Path | None

    @property
    def major(self) -> int:
        """3 or 5."""
        return int(self.name.split(".")[0])

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: ``os.environ``) with this installation's folder first on ``PATH``."""
        env = dict(os.environ if base is None else base)
        if self.bin_dir is not None:
            env["PATH"] = os.pathsep.join([str(self.bin_dir), env.get("PATH", "")])
        return env

    def which(self, program: str) -> str | None:
        """Where ``program`` resolves with this installation's ``PATH``."""
        return shutil.which(program, path=self.environment()["PATH"])


def _relion5() -> RelionInstall:
    value = os.environ.get(RELION5_BIN_ENV, "")
    return RelionInstall(name="5.0.1", version_prefix="5.0.1", star_version=50001,
                         bin_dir=Path(value).resolve() if value else None)


INSTALLS = {"3.1": RelionInstall(name="3.1", version_prefix="3.1.", star_version=30001, bin_dir=None),
            "5.0.1": _relion5()}

_VERSION_RE = re.compile(r"RELION version:? (\S+)")


def star_version(path: str | os.PathLike[str]) -> int:
    """The first ``# version NNNNN`` of a STAR file RELION wrote (0 if there is none)."""
    m = re.search(r"^# version (\d+)", Path(path).read_text(errors="replace"), flags=re.M)
    return int(m.group(1)) if m else 0


def reported_versions(install: RelionInstall, argv: list[str]) -> list[str]:
    """The versions ``argv`` (ending in a RELION program) prints for ``--version``, one per process."""
    proc = subprocess.run([*argv, "--version"], env=_mpi_env(install), capture_output=True, text=True,
                          timeout=120, check=False)
    return _VERSION_RE.findall(proc.stdout + proc.stderr)


def _mpi_env(install: RelionInstall) -> dict[str, str]:
    env = install.environment()
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def check_install(install: RelionInstall, extra_programs: tuple[str, ...] = ()) -> str | None:
    """Why ``install`` cannot be tested (None if it can).

    Every program must resolve inside ``bin_dir`` (RELION 5) or on ``PATH`` (3.1), and
    ``relion_refine_mpi``, ``relion_pipeliner`` and every rank of ``mpirun -n 3 relion_refine_mpi``
    must report the expected version.
    """
    if install.name == "5.0.1" and install.bin_dir is None:
        return (f"RELION 5.0.1 cases need {RELION5_BIN_ENV}=<bin folder of a RELION 5.0.1 build> "
                "(bash ../shared/relion5/build.sh /opt/relion5; .ci/run builds it and sets the variable)")
    missing = [p for p in (*PROGRAMS, *extra_programs) if install.which(p) is None]
    if missing:
        where = f"in {install.bin_dir} or on PATH" if install.bin_dir else "on PATH"
        hint = "" if install.bin_dir else " (Debian: apt-get install relion openmpi-bin)"
        return f"RELION {install.name} cases need {', '.join(missing)} {where}{hint}"
    if install.bin_dir is not None:
        outside = [p for p in PROGRAMS + extra_programs
                   if p.startswith("relion_") and Path(str(install.which(p))).parent != install.bin_dir]
        if outside:
            return f"RELION {install.name}: {', '.join(outside)} not found in {install.bin_dir}"
    checks = {"relion_refine_mpi": ["relion_refine_mpi"], "relion_pipeliner": ["relion_pipeliner"],
              "mpirun -n 3 relion_refine_mpi": ["mpirun", "--oversubscribe", "-n", "3", "-x", "PATH",
                                                "relion_refine_mpi"]}
    checks |= {p: [p] for p in extra_programs if p.startswith("relion_")}
    for what, argv in checks.items():
        found = reported_versions(install, argv)
        expected = 3 if what.startswith("mpirun") else 1
        if len(found) < expected or not all(v.startswith(install.version_prefix) for v in found):
            return (f"RELION {install.name}: '{what} --version' reported {found or 'nothing'}, expected "
                    f"{install.version_prefix}* from {expected} process(es)")
    return None


_checked: dict[tuple[str, tuple[str, ...]], str | None] = {}


def require(install: RelionInstall, *programs: str) -> RelionInstall:
    """Skip the calling test unless ``install`` (with ``programs``) passes :func:`check_install`; cached per session."""
    key = (install.name, programs)
    if key not in _checked:
        _checked[key] = check_install(install, programs)
    reason = _checked[key]
    if reason:
        pytest.skip(reason)
    return install
