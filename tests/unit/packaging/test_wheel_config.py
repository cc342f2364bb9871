"""The build's configuration agrees with the code it builds.

The wheel's build hook compiles the files pyproject.toml lists; the in-place build of a
checkout compiles ``mappers._accel.COMPILED``: the two lists must be the same, or the wheel
would ship a different mapper than the one the tests ran. The function package installs
deploy/aws/requirements.txt: every library ``connectors.cloud`` imports, and none of the
mapper's or gateway's.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from mappers._accel import COMPILED

ROOT = Path(__file__).resolve().parents[3]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
REQUIREMENTS = ROOT / "deploy" / "aws" / "requirements.txt"
NOT_FOR_THE_FUNCTION = {"hl7apy", "fhir.resources", "botocore", "aiokafka", "click"}
# Imported only while tracing is on (connectors/tracing.py), from the ``tracing`` extra
# (test_function_imports.py checks a cold start does not load the SDK); the API comes
# with FastAPI.
OPTIONAL_IN_THE_FUNCTION = {"opentelemetry"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _function_requirements() -> list[str]:
    lines = REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_wheel_hook_compiles_exactly_the_modules_the_checkout_compiles() -> None:
    hook = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["custom"]
    assert hook["path"] == "hatch_build.py" and (ROOT / hook["path"]).is_file()
    assert hook["include"] == [f"/mappers/{source}" for source in COMPILED]
    assert hook["options"]["group_name"] == "mappers_accel"  # the name _accel cleans up


def test_function_requirements_have_the_projects_bounds() -> None:
    project = {_name(r): r for r in PYPROJECT["project"]["dependencies"]}
    for requirement in _function_requirements():
        assert requirement == project.get(_name(requirement)), requirement
    assert not {_name(r) for r in _function_requirements()} & NOT_FOR_THE_FUNCTION


def _third_party_imports(path: Path) -> set[str]:
    """Top-level names of the non-project, non-stdlib modules a file imports (anywhere)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.partition(".")[0])
    return {n for n in found if n not in sys.stdlib_module_names
            and n not in ("connectors", "hl7gw", "gateway", "mappers")}


def test_function_requirements_cover_what_the_function_imports() -> None:
    code = ("import json, sys, connectors.cloud; print(json.dumps(sorted("
            "m.__file__ for n, m in list(sys.modules.items()) "
            "if n.partition('.')[0] in ('connectors', 'hl7gw') and m.__file__)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    files = [Path(f) for f in json.loads(done.stdout)]
    assert any(f.name == "lambda_handler.py" for f in files)
    dists = importlib.metadata.packages_distributions()
    needed = {_name(d) for f in files for m in _third_party_imports(f)
              if m not in OPTIONAL_IN_THE_FUNCTION for d in dists.get(m, [m])}
    assert needed, "found no library imports: the test reads the wrong files"
    assert needed - {_name(r) for r in _function_requirements()} == set()
