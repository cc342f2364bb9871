#!/bin/sh
# The Lambda package of the cloud function (connectors.cloud.handler) into OUT, the SAM
# template's CodeUri (deploy/aws/build/): the packages `connectors` and `hl7gw` taken from
# the project wheel, and deploy/aws/requirements.txt for Lambda's platform. The gateway,
# the mapper and their libraries stay out: the function only receives and processes FHIR
# events, it never maps. tests/integration/test_wheel_build.py builds it and runs it.
#
#   deploy/aws/build.sh WHEEL OUT      (PYTHON: the interpreter with pip, python3)
set -eu
wheel=$1 out=$2
python=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

rm -rf "$out" && mkdir -p "$out"
"$python" -m pip install --quiet --no-deps --no-compile --target "$stage" "$wheel"
cp -R "$stage/connectors" "$stage/hl7gw" "$out/"
rm -f "$out/connectors/bench.py"  # a development benchmark, not part of the function
"$python" -m pip install --quiet --no-compile --target "$out" \
    --platform manylinux2014_x86_64 --implementation cp --python-version 3.11 \
    --only-binary=:all: -r "$here/requirements.txt"
# Bytecode made here: Lambda's /var/task is read-only, so a cold start could not cache it.
# Unchecked hashes, because zipping changes the sources' times that pycs are checked by.
find "$out" -name __pycache__ -prune -exec rm -rf {} +
"$python" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$out" >/dev/null
du -sh "$out"
