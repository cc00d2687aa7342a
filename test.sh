#!/usr/bin/env bash
# Run GenoVault's tests on a fresh machine: install what is missing, then run pytest.
# Extra arguments go to pytest (e.g. ./test.sh -k ingest).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/install.sh
exec "${PYTHON:-python3}" -m pytest "$@"
