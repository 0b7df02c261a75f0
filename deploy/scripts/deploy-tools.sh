#!/usr/bin/env bash
# Create (or reuse) the virtualenv with the deploy validators of deploy/requirements-tools.txt.
# Prints the venv's bin folder. Kept apart from the project's .venv: checkov pins many
# libraries (and their versions) the server and the tests must not be forced onto.
#   usage: deploy-tools.sh [VENV]   (default .cache/deploy-tools)
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${1:-.cache/deploy-tools}
reqs=deploy/requirements-tools.txt
stamp=$venv/.requirements.sha256
want=$(sha256sum "$reqs" | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "deploy-tools: installing $reqs into $venv" >&2
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$reqs" >&2
    echo "$want" >"$stamp"
fi
echo "$venv/bin"
