"""Fixtures for the RELION integration tests: the programs, one cached data set, the locband hook.

Without RELION the tests skip with a reason; under CI=true ``locband._pytest_ci`` turns that skip
into a failure, because ``.ci/run`` installs RELION.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import relion_data


@pytest.fixture(scope="session")
def relion() -> None:
    """Skip unless relion_project, relion_refine_mpi, relion_external_reconstruct and mpirun are on PATH."""
    missing = relion_data.relion_missing()
    if missing:
        pytest.skip(f"RELION integration test needs {', '.join(missing)} on PATH "
                    "(Debian: apt-get install relion openmpi-bin)")


@pytest.fixture(scope="session")
def relion_dataset(relion: None, tmp_path_factory: pytest.TempPathFactory) -> relion_data.Dataset:
    """The CI data set (400 particles, 40 px, 3 Å/px, three conformations), built once per session."""
    return relion_data.build_dataset(tmp_path_factory.mktemp("relion_project"))


@pytest.fixture(scope="session")
def locband_hook() -> Path:
    """The locband RELION hook (``wrappers/locband-relion-reconstruct``); skip if it is not in this checkout."""
    hook = relion_data.LOCBAND_HOOK
    if not hook.is_file():
        pytest.skip(f"the locband RELION hook {hook} is not in this checkout")
    if not os.access(hook, os.X_OK):
        pytest.fail(f"the locband RELION hook {hook} is not executable")
    return hook
