"""Parent selection: which code an attempt starts from and what the prompt asks for.

Each strategy is a small ParentSelector; a weighted mix picks one per attempt, and `explore`
is weighted up when the search has stagnated.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from looplab.config import SearchConfig
from looplab.store import AttemptRow


@dataclass
class SearchView:
    """What the selectors may look at: the incumbent, the specialists, ideas nobody tried, stagnation."""

    incumbent: AttemptRow
    specialists: list[AttemptRow]  # winners best on at least one case, incumbent excluded
    unexplored: list[str]
    since_acceptance: int  # finished attempts since the incumbent was accepted



class PlanKind(StrEnum):
    """Which code an attempt starts from; also the names of `[search] mix` weights."""

    BEST = "best"  # the incumbent alone
    SPECIALIST = "specialist"  # a candidate that is best on some case
    CROSSOVER = "crossover"  # two candidates to combine
    EXPLORE = "explore"  # something structurally different


@dataclass
class Plan:
    kind: PlanKind
    parents: list[AttemptRow] = field(default_factory=list)  # extra code shown beside the incumbent
    direction: str = ""  # the instruction this strategy adds to the prompt

    @property
    def parent_id(self) -> int:
        return self.parents[0].id if self.parents else -1


class ParentSelector(Protocol):
    name: str

    def plan(self, view: SearchView, rng: random.Random) -> Plan | None:
        """A plan, or None when the strategy does not apply now (e.g. no specialists yet)."""
        ...


def _best_cases(row: AttemptRow) -> str:
    return ", ".join(row.decision.get("best_cases") or []) or "some case"


class Best:
    name = PlanKind.BEST

    def plan(self, view: SearchView, rng: random.Random) -> Plan | None:
        return Plan(PlanKind.BEST)


class Specialist:
    name = PlanKind.SPECIALIST

    def plan(self, view: SearchView, rng: random.Random) -> Plan | None:
        if not view.specialists:
            return None
        s = rng.choice(view.specialists)
        return Plan(PlanKind.SPECIALIST, [s], f"develop attempt {s.id}, the fastest on {_best_cases(s)}: keep its "
                    "strength there and make it fast on every case")


class Crossover:
    name = PlanKind.CROSSOVER

    def plan(self, view: SearchView, rng: random.Random) -> Plan | None:
        if len(view.specialists) < 2:
            return None
        a, b = rng.sample(view.specialists, 2)
        return Plan(PlanKind.CROSSOVER, [a, b], f"combine the strengths of attempt {a.id} (fastest on {_best_cases(a)}) "
                    f"and attempt {b.id} (fastest on {_best_cases(b)}) into one implementation")


class Explore:
    name = PlanKind.EXPLORE

    def plan(self, view: SearchView, rng: random.Random) -> Plan | None:
        idea = rng.choice(view.unexplored) if view.unexplored else ""
        what = f" built around this untried idea: {idea}" if idea else ""
        return Plan(PlanKind.EXPLORE, [], "try a structurally different approach" + what +
                    " (not a small tweak of the current best)")


SELECTORS: dict[str, ParentSelector] = {s.name: s for s in (Best(), Specialist(), Crossover(), Explore())}


def choose_plan(view: SearchView, config: SearchConfig, rng: random.Random) -> Plan:
    """Draw a strategy by weight among those that apply; stagnation boosts `explore`."""
    weights = dict(config.mix)
    if view.since_acceptance >= config.explore_after and "explore" in weights:
        weights["explore"] = max(weights["explore"], 0.05) * config.explore_boost
    plans = [(w, p) for name, w in weights.items() if w > 0
             for p in [SELECTORS[name].plan(view, rng)] if p is not None]
    if not plans:
        return Plan(PlanKind.BEST)
    total = sum(w for w, _ in plans)
    pick = rng.uniform(0, total)
    for w, p in plans:
        pick -= w
        if pick <= 0:
            return p
    return plans[-1][1]
