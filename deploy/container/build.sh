#!/bin/sh
# Build the hl7gw wheel (its build hook compiles the mapper with mypyc) from the source
# folder SRC into WHEELS, install it into a new virtualenv VENV, and check that the mapper
# runs compiled there. The container image's build stage runs exactly this
# (deploy/container/Containerfile), and so does tests/integration/test_wheel_build.py.
#
#   deploy/container/build.sh SRC WHEELS VENV      (PYTHON: the interpreter, python3)
#
# SRC must be a copy: the build hook compiles inside it (hatch_build.py).
set -eu
src=$1 wheels=$2 venv=$3
python=${PYTHON:-python3}

"$python" -m pip wheel --no-deps --wheel-dir "$wheels" "$src"
"$python" -m venv "$venv"
venv=$(cd "$venv" && pwd)
# With the tracing extra: the image can turn OpenTelemetry on from its config
# (tracing.enabled, docs/observability.md); it is imported only then.
wheel=$(ls "$wheels"/hl7gw-*.whl)
"$venv/bin/pip" install --quiet "$wheel[tracing]"
cd /  # import from the venv, not from a source folder in the working directory
"$venv/bin/python" -c '
import mappers._accel as accel, mappers
status = accel.status()
print("mapper:", status)
if status != "compiled (mypyc)":
    raise SystemExit("the wheel did not bring the compiled mapper")
'
