#!/usr/bin/env bash
# The main job on a fresh machine: install, start the embedded OpenBao, ingest the bundled
# demo cohort into an encrypted dataset, show and verify it, and run an aggregate query.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
exec "${PYTHON:-python3}" -m vault.cli quickstart "$@"
