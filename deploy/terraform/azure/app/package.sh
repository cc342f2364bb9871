#!/bin/sh
# The Azure Functions package of the cloud function: the Lambda package built by
# deploy/aws/build.sh (connectors, hl7gw and their libraries for Linux x86_64, Python
# 3.11; no mapper) under .python_packages/lib/site-packages, where the Functions Python
# worker looks for libraries, next to function_app.py and host.json.
#
#   deploy/terraform/azure/app/package.sh BUILD ZIP    (BUILD: deploy/aws/build)
set -eu
build=$1 zip=$2
here=$(cd "$(dirname "$0")" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

mkdir -p "$stage/.python_packages/lib"
cp -R "$build" "$stage/.python_packages/lib/site-packages"
cp "$here/function_app.py" "$here/host.json" "$stage/"
rm -f "$zip"
zip=$(cd "$(dirname "$zip")" && pwd)/$(basename "$zip")
(cd "$stage" && python3 -m zipfile -c "$zip" .python_packages function_app.py host.json)
du -h "$zip"
