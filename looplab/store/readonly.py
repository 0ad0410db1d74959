"""Open an experiment's store read-only: the report, the dashboard and the progress panel look, never write.

open_store(experiment, url, read_only=True) picks the backend (a `mode=ro` SQLite file, or a read-only
PostgreSQL session); this adds what a viewer wants: None when there is no store to look at yet.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from looplab.store.core import Store
from looplab.store.faults import StoreError
from looplab.store.opening import open_store

if TYPE_CHECKING:
    from looplab.config import Experiment


def open_readonly(experiment: Experiment, url: str | None = None) -> Store | None:
    """The experiment's store opened read-only (the report, the dashboard, the progress panel); None when
    the experiment has not run yet (or the file is not a store). A PostgreSQL server that cannot be
    reached is a UserError, as for every other command."""
    try:
        store = open_store(experiment, url, read_only=True)
    except FileNotFoundError:
        return None
    except (sqlite3.DatabaseError, StoreError) as e:
        if _not_a_store(e):
            return None
        raise
    try:
        store.fingerprint()  # fails here, not mid-render, on a file that is not a looplab store
    except (sqlite3.DatabaseError, StoreError) as e:
        store.close()
        if _not_a_store(e):
            return None
        raise
    return store


def _not_a_store(e: Exception) -> bool:
    """A file SQLite cannot read as a database (a locked or unreadable store is still an error)."""
    return not isinstance(e, StoreError) or e.kind == "corrupt"
