import random

from looplab.config import SearchConfig
from looplab.propose.parents import SearchView, choose_plan
from looplab.store import AttemptRow


def row(i, best_cases=()):
    return AttemptRow(id=i, started_at=0, ended_at=1, model="m", outcome=None, source=f"src{i}",
                      decision={"best_cases": list(best_cases)})


def draw(view, config, n=400):
    rng = random.Random(1)
    kinds = [choose_plan(view, config, rng).kind for _ in range(n)]
    return {k: kinds.count(k) for k in set(kinds)}


def test_only_applicable_strategies_are_drawn():
    view = SearchView(row(0), [], [], since_acceptance=0)
    counts = draw(view, SearchConfig())
    assert set(counts) == {"best", "explore"}


def test_specialists_and_crossover_show_their_parents():
    specs = [row(3, ["n96"]), row(5, ["n160"])]
    view = SearchView(row(7), specs, ["blocking"], since_acceptance=0)
    rng = random.Random(0)
    seen = {}
    for _ in range(200):
        plan = choose_plan(view, SearchConfig(), rng)
        seen[plan.kind] = plan
    assert set(seen) == {"best", "specialist", "crossover", "explore"}
    assert seen["specialist"].parents[0].id in (3, 5) and "fastest on" in seen["specialist"].direction
    assert {p.id for p in seen["crossover"].parents} == {3, 5} and "combine" in seen["crossover"].direction
    assert "blocking" in seen["explore"].direction


def test_stagnation_weights_explore_up():
    config = SearchConfig(mix={"best": 0.8, "explore": 0.2}, explore_after=5, explore_boost=4.0)
    fresh = draw(SearchView(row(0), [], ["x"], since_acceptance=0), config)
    stuck = draw(SearchView(row(0), [], ["x"], since_acceptance=9), config)
    assert stuck["explore"] > 2 * fresh["explore"]
