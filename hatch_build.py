"""Wheel build hook: the mapper's hot modules compiled by mypyc into the wheel.

hatch-mypyc does the work (as for black); this subclass only skips editable installs
(``pip install -e .``, what ``make setup`` runs), which compile in place instead with
``mappers._accel`` and check for stale builds on each start. The modules to compile are
listed under ``[tool.hatch.build.targets.wheel.hooks.custom]`` in pyproject.toml and must
match ``mappers._accel.COMPILED`` (a test checks).

hatch-mypyc builds inside the project directory (it renames pyproject.toml and removes
in-place ``.so`` files while it runs): build from a clean copy, as ``python -m build``
(sdist, then the wheel from it) and deploy/container/Containerfile do, never from a
working tree someone is using.
"""

from __future__ import annotations

from typing import Any

from hatch_mypyc.plugin import MypycBuildHook  # type: ignore[import-not-found]


class MapperBuildHook(MypycBuildHook):  # type: ignore[misc]
    """hatch-mypyc's hook for regular wheels only."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        super().initialize(version, build_data)


def get_build_hook() -> type[MapperBuildHook]:
    """Hatchling's way to pick the hook when the module holds several hook classes."""
    return MapperBuildHook
