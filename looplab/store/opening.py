"""Which store an experiment uses, and the one place a backend is picked: open_store.

--store URL, else $LOOPLAB_STORE, else the SQLite file in the experiment's .looplab/. A PostgreSQL URL
keeps the store in one schema per experiment; read_only opens it only to look.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from looplab.store.backend import Backend
from looplab.store.core import Store
from looplab.store.sqlite import ReadOnlySqliteBackend, SqliteBackend

if TYPE_CHECKING:
    from looplab.config import Experiment

STORE_ENV = "LOOPLAB_STORE"  # a store URL used when --store is not given


def store_url(url: str | None = None) -> str:
    """--store if given, else $LOOPLAB_STORE; "" means the SQLite file in the experiment."""
    return (url if url is not None else os.environ.get(STORE_ENV, "")).strip()


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def sqlite_store_path(experiment: Experiment, url: str) -> Path:
    """The SQLite file a (non-PostgreSQL) store URL names; UserError for anything else."""
    from looplab.errors import UserError

    if not url:
        return experiment.store_path
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))  # sqlite:///rel/path, sqlite:////abs/path
        return path if path.is_absolute() else experiment.root / path
    raise UserError(f"--store {url.split('://')[0]}://...: not a store URL (fix: use postgresql://USER@HOST/DB, "
                    f"sqlite:///PATH, or leave it out for {experiment.store_path}; also checked: ${STORE_ENV})")


def open_store(experiment: Experiment, url: str | None = None, *, read_only: bool = False) -> Store:
    """The experiment's store: url (--store), else $LOOPLAB_STORE, else the SQLite file in .looplab/.

    postgresql://USER[:PASSWORD]@HOST[:PORT]/DB keeps it in PostgreSQL, one schema per experiment
    (named from experiment.name), so one database can hold several experiments and several loops.
    read_only: nothing is created or migrated and every write fails (ReadOnlyStoreError);
    FileNotFoundError when there is no store yet.
    """
    url = store_url(url)
    backend: Backend
    if is_postgres_url(url):
        from looplab.store.postgres import PostgresBackend, schema_name

        backend = PostgresBackend(url, schema=schema_name(experiment.name), read_only=read_only)
    elif read_only:
        backend = ReadOnlySqliteBackend(sqlite_store_path(experiment, url))
    else:
        backend = SqliteBackend(sqlite_store_path(experiment, url))
    return Store(backend)
