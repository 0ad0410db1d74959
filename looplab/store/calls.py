"""Model calls and what they cost: one row per call (failed ones too), usage totals, replies for replay.

Part of the Store (core.py), over its backend, so SQLite, PostgreSQL and a read-only view share it.
"""

from __future__ import annotations

import time
from typing import Any

from looplab.records import Usage
from looplab.store.backend import Backend


class CallLog:
    """The calls table (mixed into Store)."""

    backend: Backend

    def record_call(self, *, attempt_id: int | None, model: str, kind: str, usage: Usage,
                    latency_s: float, error: str | None = None, response: str | None = None) -> None:
        """One model call (kind: 'propose', 'reflect', ...); failed calls are recorded too.

        response: the reply text, kept for `export-replies` (replies()).
        """
        with self.backend.transaction():
            self.backend.execute(
                "INSERT INTO calls (attempt_id, model, kind, prompt_tokens, completion_tokens, cached_tokens, "
                "cost_usd, latency_s, error, ts, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (attempt_id, model, kind, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens,
                 usage.cost_usd, latency_s, error, time.time(), response),
            )

    def replies(self, kind: str = "propose", *, repairs: bool = False) -> list[tuple]:
        """(reply text, usage) of successful calls that kept their text, oldest first — for replay.

        repairs: also the repair turns' replies, each item then (text, usage, is_repair)."""
        kinds = (kind, "repair") if repairs else (kind,)
        with self.backend.lock:
            rows = self.backend.execute(
                "SELECT response, prompt_tokens, completion_tokens, cached_tokens, cost_usd, kind FROM calls "
                f"WHERE kind IN ({', '.join('?' for _ in kinds)}) AND error IS NULL AND response IS NOT NULL "
                "ORDER BY id",
                kinds,
            ).fetchall()
        if repairs:
            return [(r[0], Usage(r[1], r[2], r[3], r[4]), r[5] == "repair") for r in rows]
        return [(r[0], Usage(r[1], r[2], r[3], r[4])) for r in rows]

    def calls(self, attempt_id: int | None = None) -> list[dict[str, Any]]:
        """Model calls as plain dicts (all, or one attempt's), oldest first."""
        with self.backend.lock:
            if attempt_id is None:
                rows = self.backend.execute("SELECT * FROM calls ORDER BY id").fetchall()
            else:
                rows = self.backend.execute("SELECT * FROM calls WHERE attempt_id = ? ORDER BY id",
                                     (attempt_id,)).fetchall()
        return [dict(r) for r in rows]

    def usage_total(self, kind: str | None = None) -> Usage:
        """Sum over all calls (or one kind's); cost_usd is None when any call's price was unknown."""
        with self.backend.lock:
            r = self.backend.execute(
                "SELECT COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
                "COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(cost_usd), 0.0), "
                "COALESCE(SUM(CASE WHEN cost_usd IS NULL AND prompt_tokens + completion_tokens > 0 "
                "THEN 1 ELSE 0 END), 0) FROM calls" + ("" if kind is None else " WHERE kind = ?"),
                () if kind is None else (kind,),
            ).fetchone()
        return Usage(int(r[0]), int(r[1]), int(r[2]), None if r[4] else float(r[3]))

    def fingerprint(self) -> tuple:
        """Changes whenever an attempt begins or ends or a model call is recorded (cheap to poll)."""
        with self.backend.lock:
            # Index lookups only, so polling costs the same however many attempts the store holds:
            # a begin raises the max id, a finish lowers the in-flight count, a call raises its max id.
            row = self.backend.execute(
                "SELECT (SELECT COALESCE(MAX(id), -1) FROM attempts), "
                "(SELECT COUNT(*) FROM attempts WHERE outcome IS NULL), "
                "(SELECT COALESCE(MAX(id), 0) FROM calls)"
            ).fetchone()
        return tuple(row[i] for i in range(3))

    def mean_attempt_cost(self) -> float | None:
        """Mean cost of the attempts whose calls are all priced; None before the first one."""
        with self.backend.lock:
            r = self.backend.execute(
                "SELECT COALESCE(SUM(cost), 0.0), COUNT(*) FROM (SELECT SUM(cost_usd) AS cost FROM calls "
                "WHERE attempt_id IS NOT NULL GROUP BY attempt_id HAVING SUM(CASE WHEN cost_usd IS NULL AND "
                "prompt_tokens + completion_tokens > 0 THEN 1 ELSE 0 END) = 0) AS priced"
            ).fetchone()
        return float(r[0]) / int(r[1]) if r[1] else None
