"""Which loops are alive, and what dead ones left behind: heartbeats, in-flight rows, half-done acceptances.

Part of the Store (core.py), over its backend, so SQLite, PostgreSQL and a read-only view share it.
A loop is dead when it is this Store itself (its own earlier rows), a loop on this host whose process
is gone, or a loop anywhere that has not beaten for SILENT_S.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from looplab.records import Outcome
from looplab.store.backend import Backend
from looplab.store.owner import Owner, is_dead
from looplab.store.schema import AttemptRow

HEARTBEAT_S = 30.0  # how often a running loop says it is alive
SILENT_S = 600.0  # a loop silent this long is dead (a live one whose row was marked still records its result)


class LoopRegistry:
    """Heartbeats and the clean-up of dead loops' rows (mixed into Store)."""

    backend: Backend
    owner: Owner

    def heartbeat(self) -> None:
        """This loop is alive: a running loop calls it every HEARTBEAT_S.

        Beats are stamped by the store's own clock (the server's, for PostgreSQL): hosts' clocks may disagree.
        """
        with self.backend.transaction():
            self.backend.execute(
                f"INSERT INTO loops (token, host, pid, beat_at) VALUES (?, ?, ?, {self.backend.now_sql}) "
                "ON CONFLICT (token) DO UPDATE SET beat_at = excluded.beat_at",
                (self.owner.token, self.owner.host, self.owner.pid))

    def end_heartbeat(self) -> None:
        """This loop stops cleanly: forget its beat."""
        with self.backend.transaction():
            self.backend.execute("DELETE FROM loops WHERE token = ?", (self.owner.token,))

    def _loops(self) -> list[tuple[str, str, int, float]]:
        """(token, host, pid, seconds since the last beat) of every loop that has beaten."""
        with self.backend.lock:
            rows = self.backend.execute(f"SELECT token, host, pid, {self.backend.now_sql} - beat_at FROM loops "
                                        "ORDER BY host, pid").fetchall()
        return [(r[0], r[1], int(r[2]), max(float(r[3]), 0.0)) for r in rows]

    def live_loops(self) -> list[dict[str, Any]]:
        """Loops that beat within SILENT_S and, on this host, still run: host, pid, seconds since their beat."""
        here = socket.gethostname()
        return [{"host": host, "pid": pid, "last_beat_s": round(age, 1)}
                for token, host, pid, age in self._loops()
                if age < SILENT_S and not (host == here and is_dead(host, pid, token))]

    def silent_loops(self) -> set[str]:
        """Tokens of loops whose last beat is older than SILENT_S: on another host, they are dead."""
        return {token for token, _, _, age in self._loops() if age >= SILENT_S}

    def _dead(self, host: str | None, pid: int | None, token: str | None, silent: set[str]) -> bool:
        return token == self.owner.token or token in silent or is_dead(host, pid, token)

    def mark_interrupted(self) -> list[int]:
        """In-flight rows of dead loops (a crash, a kill -9) become 'interrupted'; returns their ids.

        Other rows stay in flight. The beats of dead loops are forgotten.
        """
        silent = self.silent_loops()
        with self.backend.transaction():
            for r in self.backend.execute("SELECT token, host, pid FROM loops").fetchall():
                if r[0] != self.owner.token and (r[0] in silent or is_dead(r[1], r[2], r[0])):
                    self.backend.execute("DELETE FROM loops WHERE token = ?", (r[0],))  # a dead loop's last beat
            rows = self.backend.execute("SELECT id, owner_host, owner_pid, owner_token FROM attempts "
                                        "WHERE outcome IS NULL ORDER BY id").fetchall()
            ids = [r[0] for r in rows if self._dead(r[1], r[2], r[3], silent)]
            for attempt_id in ids:
                self.backend.execute(
                    "UPDATE attempts SET outcome = ?, ended_at = ?, reason = ? WHERE id = ? AND outcome IS NULL",
                    (Outcome.INTERRUPTED.value, time.time(), "still in flight when its run stopped", attempt_id),
                )
        return ids

    def pending_acceptances(self) -> list[AttemptRow]:
        """Winners a dead loop recorded but did not finish archiving and committing (see keeping.py)."""
        silent = self.silent_loops()
        with self.backend.lock:
            rows = self.backend.execute("SELECT id, owner_host, owner_pid, owner_token FROM attempts "
                                        "WHERE accepting IS NOT NULL ORDER BY id").fetchall()
        found = [self.attempt(r[0]) for r in rows if self._dead(r[1], r[2], r[3], silent)]
        return [r for r in found if r is not None]
