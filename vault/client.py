"""A small Python client for researchers: aggregate answers as pyarrow tables or DataFrames.

    from vault.client import Client
    c = Client("http://127.0.0.1:8700", token)          # or Client.from_env()
    t = c.frequency("demo", region="20:1-60000", group_by="population")
    df = t.to_pandas()

Every call returns the table of per-variant aggregates (one row per variant, or per variant
and group with ``group_by``) and keeps the answer's ``disclosure``, ``query_id`` and
``policy`` in ``client.last``. Suppressed values are null in the table, never 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pyarrow as pa

from vault.errors import GenoVaultError

STATISTICS = ("frequency", "genotype-counts", "hardy-weinberg", "missingness")


class ApiError(GenoVaultError):
    """The API refused or failed a request; the message is the API's own explanation."""

    def __init__(self, status: int, error: str, detail: str, query_id: str | None) -> None:
        self.status = status
        self.error = error
        self.query_id = query_id
        super().__init__(f"{status} {error}: {detail}"
                         + (f" (query {query_id})" if query_id else ""))


class Client:
    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout,
                                  headers={"Authorization": f"Bearer {token}"})
        self.last: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<Client {self._http.base_url} token=<redacted>>"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw -------------------------------------------------------------------------------
    def get(self, path: str, **params: Any) -> dict[str, Any]:
        clean = {k: v for k, v in params.items() if v is not None}
        r = self._http.get(path, params=clean)
        return self._json(r)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._json(self._http.post(path, json=body))

    def _json(self, r: httpx.Response) -> dict[str, Any]:
        try:
            body: dict[str, Any] = r.json()
        except ValueError:
            body = {"error": "bad_response", "detail": r.text[:200]}
        if r.status_code >= 400:
            raise ApiError(r.status_code, str(body.get("error")), str(body.get("detail")),
                           body.get("query_id"))
        self.last = body
        return body

    # -- datasets --------------------------------------------------------------------------
    def datasets(self) -> list[dict[str, Any]]:
        return list(self.get("/v1/datasets")["datasets"])

    def dataset(self, dataset: str) -> dict[str, Any]:
        return self.get(f"/v1/datasets/{dataset}")

    # -- statistics ------------------------------------------------------------------------
    def pages(self, statistic: str, dataset: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every page of a statistic answer (follows ``next_cursor``)."""
        cursor = 0
        while True:
            page = self.get(f"/v1/datasets/{dataset}/{statistic}", cursor=cursor, **params)
            yield page
            if not page.get("truncated"):
                return
            cursor = int(page["next_cursor"])

    def statistic(self, statistic: str, dataset: str, *, region: str | None = None,
                  group_by: str | None = None, limit: int = 1000,
                  filter: str | None = None) -> pa.Table:
        """Every page of a statistic as one table; ``filter`` is a site filter (docs/api.md)."""
        rows: list[dict[str, Any]] = []
        for page in self.pages(statistic, dataset, region=region, group_by=group_by,
                               limit=limit, filter=filter):
            rows += flatten(page)
        return pa.Table.from_pylist(rows) if rows else pa.table({})

    def table(self, statistic: str, dataset: str, *, region: str | None = None,
              group_by: str | None = None) -> pa.Table:
        """The whole answer as one wide table (format=arrow): one row per variant, columns
        ``chrom, pos, ref, alt, id`` and per cell ``overall.<field>`` /
        ``groups.<name>.<field>`` plus ``<cell>.suppressed`` (why a cell is null). Pages
        are followed; the last envelope (disclosure, query_id …) is in ``client.last``."""
        tables: list[pa.Table] = []
        cursor = 0
        params = {k: v for k, v in {"region": region, "group_by": group_by}.items()
                  if v is not None}
        while True:
            r = self._http.get(f"/v1/datasets/{dataset}/{statistic}",
                               params={**params, "format": "arrow", "cursor": cursor})
            if r.status_code >= 400:
                self._json(r)  # raises ApiError with the API's explanation
            table = pa.ipc.open_stream(r.content).read_all()
            meta = json.loads((table.schema.metadata or {})[b"genovault"])
            self.last = meta
            tables.append(table.replace_schema_metadata(None))
            if not meta.get("truncated"):
                break
            cursor = int(meta["next_cursor"])
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def frequency(self, dataset: str, **kw: Any) -> pa.Table:
        return self.statistic("frequency", dataset, **kw)

    def genotype_counts(self, dataset: str, **kw: Any) -> pa.Table:
        return self.statistic("genotype-counts", dataset, **kw)

    def hardy_weinberg(self, dataset: str, **kw: Any) -> pa.Table:
        return self.statistic("hardy-weinberg", dataset, **kw)

    def missingness(self, dataset: str, **kw: Any) -> pa.Table:
        return self.statistic("missingness", dataset, **kw)

    def presence(self, dataset: str, chrom: str, pos: int, ref: str, alt: str) -> bool | None:
        ans = self.get(f"/v1/datasets/{dataset}/presence", chrom=chrom, pos=pos, ref=ref,
                       alt=alt)
        exists: bool | None = ans["exists"]
        return exists


def flatten(page: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-variant rows of a statistic page: one row overall, plus one per group."""
    out = []
    for v in page.get("variants", []):
        site = {k: v[k] for k in ("chrom", "pos", "ref", "alt")}
        out.append({**site, "group": None, **v["overall"]})
        for name, cell in (v.get("groups") or {}).items():
            out.append({**site, "group": name, **cell})
    return out
