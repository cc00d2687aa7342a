# GenoVault runtime image: the `genovault` CLI (ingest, datasets, embedded OpenBao for local use).
# No secrets are baked in: point it at a Vault/OpenBao with VAULT_ADDR and pass a role token
# (VAULT_TOKEN) at run time, and mount the store at /data.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY vault ./vault
COPY kernels ./kernels
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 genovault
COPY --from=build /install /usr/local
ENV GENOVAULT_HOME=/home/genovault/.genovault \
    GENOVAULT_STORE=/data \
    NUMBA_CACHE_DIR=/home/genovault/.cache/numba \
    PYTHONUNBUFFERED=1
RUN mkdir -p /data && chown genovault:genovault /data
USER genovault
VOLUME ["/data"]
ENTRYPOINT ["genovault"]
CMD ["--help"]
