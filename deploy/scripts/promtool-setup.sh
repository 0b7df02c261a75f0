#!/usr/bin/env bash
# promtool for the offline check of deploy/monitoring/prometheus-rules.yaml
# (tests/integration/test_monitoring_files.py): Debian's prometheus package, installed with
# apt-get as root when missing. Exit 3 when it cannot be installed here (not root, no
# apt-get); the promtool test then skips and says why (the other checks still run).
set -euo pipefail
command -v promtool >/dev/null && exit 0
if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    echo "promtool-setup: promtool missing and cannot install (needs root and apt-get)" >&2
    exit 3
fi
echo "promtool-setup: installing prometheus (for promtool)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends prometheus >/dev/null
