"""The store: the single source of truth of one experiment (attempts, calls, loops, acceptances).

One Store (core.py) over a backend (backend.py: SQLite, PostgreSQL, read-only); open_store picks it.
"""

from looplab.store.backend import Backend, ReadOnlyStoreError
from looplab.store.core import Store
from looplab.store.opening import (
    STORE_ENV,
    is_postgres_url,
    open_store,
    sqlite_store_path,
    store_url,
)
from looplab.store.readonly import open_readonly
from looplab.store.schema import AttemptRow, Holdout

__all__ = ["STORE_ENV", "AttemptRow", "Backend", "Holdout", "ReadOnlyStoreError", "Store", "is_postgres_url",
           "open_readonly", "open_store", "sqlite_store_path", "store_url"]
