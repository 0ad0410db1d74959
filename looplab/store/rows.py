"""Reading attempts: each finished attempt's row is parsed once (its JSON is most of a read's cost).

Part of the Store (a mixin over its `_execute` / `_lock` seam, so SQLite and PostgreSQL share it).
memory re-reads the latest few hundred attempts after every attempt: light reads take the rows' keys
first and fetch only those not read before, so that costs the same with 50 or 5,000 attempts stored.
"""

from __future__ import annotations

from typing import Any

from looplab.store.schema import SELECT_ATTEMPTS, SELECT_ATTEMPTS_LIGHT, SELECT_KEYS, AttemptRow, attempt_row

MAX_KEPT = 8192  # parsed rows kept per store; past it the cache starts again


class RowReader:
    """Attempt rows by query (mixed into Store)."""

    def _query(self, tail: str, params: tuple = (), light: bool = False) -> list[AttemptRow]:
        if light:
            return self._query_light(tail, params)
        with self._lock:
            rows = self._execute(SELECT_ATTEMPTS + tail, params).fetchall()
            accepting = bool(rows) and "accepting" in rows[0].keys()
            return [self._parsed(r, False, accepting) for r in rows]

    def _query_light(self, tail: str, params: tuple) -> list[AttemptRow]:
        """Light rows: the keys first (small columns), then only the rows not parsed before."""
        cache = self.__dict__.setdefault("_rows", {})
        with self._lock:
            keys = [(k["id"], (True, k["id"], k["started_at"], k["ended_at"], k["outcome"], k["commit_hash"],
                               k["parent_id"])) for k in self._execute(SELECT_KEYS + tail, params).fetchall()]
            missing = [i for i, key in keys if key not in cache or key[4] is None]
            fresh: dict[int, AttemptRow] = {}
            for at in range(0, len(missing), 500):
                chunk = missing[at:at + 500]
                where = f"WHERE a.id IN ({','.join('?' * len(chunk))})"
                for r in self._execute(SELECT_ATTEMPTS_LIGHT + where, tuple(chunk)).fetchall():
                    fresh[r["id"]] = self._parsed(r, True, False)
        return [fresh[i] if i in fresh else cache[key] for i, key in keys if i in fresh or key in cache]

    def _parsed(self, r: Any, light: bool, accepting: bool) -> AttemptRow:
        """A finished attempt's row is parsed once: re-reading the latest few hundred every attempt (memory)
        then costs the query, not the JSON. Every write that can change a row changes its key (a finish
        or an interruption sets ended_at; acceptance sets commit_hash and accepting; calls the usage)."""
        if r["outcome"] is None:
            return attempt_row(r)
        key: tuple = (True, r["id"], r["started_at"], r["ended_at"], r["outcome"], r["commit_hash"], r["parent_id"])
        if not light:
            key = (False, *key[1:], r["accepting"] if accepting else None, r["u_prompt"], r["u_completion"],
                   r["u_cached"], r["u_cost"], r["u_unknown"])
        cache = self.__dict__.setdefault("_rows", {})
        row = cache.get(key)
        if row is None:
            if len(cache) >= MAX_KEPT:
                cache.clear()
            row = cache[key] = attempt_row(r)
        return row
