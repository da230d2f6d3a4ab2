"""Packaging: Keyturn's top-level names are its own, and the `keyturn` command is installed."""

from __future__ import annotations

import importlib
import importlib.metadata
import shutil
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# `schema` and `models` are also the names of unrelated PyPI packages: installing one of them
# next to Keyturn would make `import schema` pick whichever comes first on the path.
OWN_TOP_LEVEL_NAMES = ("api", "schema", "models", "admin")


@pytest.mark.parametrize("name", OWN_TOP_LEVEL_NAMES)
def test_no_other_installed_distribution_provides_our_top_level_names(name: str) -> None:
    providers = set(importlib.metadata.packages_distributions().get(name, []))
    assert providers <= {"keyturn"}, (
        f"{name!r} is also provided by {sorted(providers - {'keyturn'})}"
    )


@pytest.mark.parametrize("name", OWN_TOP_LEVEL_NAMES)
def test_top_level_names_import_from_this_project(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().is_relative_to(PROJECT_ROOT)


def test_keyturn_distribution_declares_the_console_script() -> None:
    scripts = importlib.metadata.distribution("keyturn").entry_points.select(
        group="console_scripts"
    )
    assert {script.name: script.value for script in scripts} == {"keyturn": "api.cli:main"}


def test_keyturn_command_is_installed_beside_the_interpreter() -> None:
    script = shutil.which("keyturn", path=str(Path(sys.executable).parent))
    assert script is not None
