"""Reading attempts: the incumbent, the baseline, winners, by outcome or hash; each finished row parsed once.

Part of the Store (core.py), over its backend, so SQLite, PostgreSQL and a read-only view share it.
memory re-reads the latest few hundred attempts after every attempt: light reads take the rows' keys
first and fetch only those not read before, so that costs the same with 50 or 5,000 attempts stored.
"""

from __future__ import annotations

from typing import Any

from looplab.records import Outcome
from looplab.store.backend import Backend
from looplab.store.schema import SELECT_ATTEMPTS, SELECT_ATTEMPTS_LIGHT, SELECT_KEYS, AttemptRow, attempt_row

MAX_KEPT = 8192  # parsed rows kept per store; past it the cache starts again


class RowReader:
    """Attempt rows by query (mixed into Store)."""

    backend: Backend

    def attempt(self, attempt_id: int) -> AttemptRow | None:
        rows = self._query("WHERE a.id = ?", (attempt_id,))
        return rows[0] if rows else None

    def attempts(self, *, outcomes: list[Outcome] | None = None, limit: int | None = None,
                 newest_first: bool = False, light: bool = False) -> list[AttemptRow]:
        """Finished and in-flight attempts, id order (or newest first), optionally filtered by outcome.

        light: without the candidate's source and its usage (zeros): cheaper, for summaries.
        """
        where, params = "", []
        if outcomes is not None:
            where = f"WHERE a.outcome IN ({','.join('?' * len(outcomes))})" if outcomes else "WHERE 1 = 0"
            params = [Outcome(o).value for o in outcomes]
        order = " ORDER BY a.id DESC" if newest_first else " ORDER BY a.id"
        if limit is not None:
            order += " LIMIT ?"
            params.append(int(limit))
        return self._query(where + order, tuple(params), light=light)

    def baseline(self) -> AttemptRow | None:
        rows = self._query("WHERE a.outcome = ?", (Outcome.BASELINE.value,))
        return rows[0] if rows else None

    def incumbent(self) -> AttemptRow | None:
        """The newest 'accepted' attempt, or the baseline when none.

        Newest by the time it was accepted (ended_at), since attempts in flight together
        may finish out of id order.
        """
        rows = self._query("WHERE a.outcome = ? ORDER BY a.ended_at DESC, a.id DESC LIMIT 1",
                           (Outcome.ACCEPTED.value,))
        return rows[0] if rows else self.baseline()

    def winners(self) -> list[AttemptRow]:
        """Accepted and specialist attempts (not the baseline), id order."""
        return self.attempts(outcomes=[Outcome.ACCEPTED, Outcome.SPECIALIST])

    def in_flight(self) -> list[int]:
        """Ids of attempts begun and not finished."""
        with self.backend.lock:
            return [r[0] for r in self.backend.execute("SELECT id FROM attempts WHERE outcome IS NULL ORDER BY id")]

    def outcome_counts(self) -> dict[str, int]:
        """Finished attempts (baseline excluded) by outcome value."""
        with self.backend.lock:
            rows = self.backend.execute(
                "SELECT outcome, COUNT(*) FROM attempts WHERE outcome IS NOT NULL AND outcome != ? "
                "GROUP BY outcome ORDER BY COUNT(*) DESC, outcome",
                (Outcome.BASELINE.value,),
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def find_by_hash(self, source_hash: str) -> AttemptRow | None:
        """The earliest attempt whose normalised source hash is source_hash."""
        rows = self._query("WHERE a.source_hash = ? ORDER BY a.id LIMIT 1", (source_hash,))
        return rows[0] if rows else None

    def _query(self, tail: str, params: tuple = (), light: bool = False) -> list[AttemptRow]:
        if light:
            return self._query_light(tail, params)
        with self.backend.lock:
            rows = self.backend.execute(SELECT_ATTEMPTS + tail, params).fetchall()
            accepting = bool(rows) and "accepting" in rows[0].keys()
            return [self._parsed(r, False, accepting) for r in rows]

    def _query_light(self, tail: str, params: tuple) -> list[AttemptRow]:
        """Light rows: the keys first (small columns), then only the rows not parsed before."""
        cache = self.__dict__.setdefault("_rows", {})
        with self.backend.lock:
            keys = [(k["id"], (True, k["id"], k["started_at"], k["ended_at"], k["outcome"], k["commit_hash"],
                               k["parent_id"])) for k in self.backend.execute(SELECT_KEYS + tail, params).fetchall()]
            missing = [i for i, key in keys if key not in cache or key[4] is None]
            fresh: dict[int, AttemptRow] = {}
            for at in range(0, len(missing), 500):
                chunk = missing[at:at + 500]
                where = f"WHERE a.id IN ({','.join('?' * len(chunk))})"
                for r in self.backend.execute(SELECT_ATTEMPTS_LIGHT + where, tuple(chunk)).fetchall():
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
