"""The store: the single source of truth of one experiment (attempts, calls, loops, acceptances)."""

from looplab.store.core import STORE_ENV, Store, is_postgres_url, open_store, sqlite_store_path, store_url
from looplab.store.schema import AttemptRow

__all__ = ["STORE_ENV", "AttemptRow", "Store", "is_postgres_url", "open_store", "sqlite_store_path", "store_url"]
