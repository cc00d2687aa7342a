"""A real Dask LocalCluster for tests: two worker processes of one thread each, on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def two_worker_client() -> Iterator[Any]:
    """Yield a Client of a new LocalCluster (2 processes, 1 thread each, loopback), closed
    after. Its HTTP dashboard takes a free port (the default 8787 may be taken: a warning,
    an error under the tests' warning filters)."""
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1",
                                  dashboard_address="127.0.0.1:0") as lc, \
            distributed.Client(lc) as client:
        yield client
