"""The machine's noise floor: the incumbent against itself through the judge's own decision rule.

Every trial is an A/A comparison (same source, same binary) under the experiment's acceptance rule,
with its rounds, sequential looks, confidence and minimum gain, confirmed as the judge confirms.
A confirmed "better" verdict is a false acceptance. For timing and noisy scores the per-round spread
gives the smallest gain the settings can reliably (80% power) detect; a deterministic score has none.
"""

from __future__ import annotations

import math
import statistics

from looplab.acceptance import Incumbent, Noise, Rule
from looplab.acceptance.choose import measure_noise, rule_for
from looplab.acceptance.judge import confirmed_session
from looplab.acceptance.stats import Status, decision_confidence, look_points, min_detectable_gain
from looplab.config import Experiment
from looplab.errors import UserError
from looplab.executors import Executor
from looplab.sandbox.command import protection


async def calibrate(experiment: Experiment, evaluator: Executor, *, trials: int = 20,
                    source: str | None = None) -> dict:
    """A/A trials of `source` (default: the baseline; pass the incumbent's) against itself."""
    if trials < 1:
        raise UserError("calibrate: --trials must be at least 1 (fix: pass a positive number)")
    obj = experiment.config.objective
    source = experiment.baseline_source if source is None else source
    cases = evaluator.search_cases
    first = await evaluator.evaluate(source, cases)
    if not first.ok:
        raise UserError(f"{experiment.root}: the incumbent does not pass its own evaluation: {first.reason} "
                        "(fix: repair the baseline or the harness)")
    noise = await measure_noise(experiment, evaluator, source, first)
    rule = rule_for(experiment, evaluator, noise.value)
    if rule.rule == Rule.JUDGED:  # false wins and order flips of the judge model, not a noise floor
        from looplab.acceptance.judged import calibrate as calibrate_judged

        found = await calibrate_judged(rule, source, Incumbent(source, dict(first.cases)), cases, trials)
        return {**found, "protection": protection()}
    looks = look_points(obj.rounds, obj.max_rounds)
    incumbent = Incumbent(source, dict(first.cases))
    false_accepts, rounds_used, spreads = 0, [], []
    for _ in range(trials):
        t = await confirmed_session(rule, source, incumbent, cases)
        if t.failure is not None:
            raise UserError(f"{experiment.root}: the incumbent failed while measuring: {t.failure.reason} "
                            "(fix: repair the baseline or the harness)")
        false_accepts += t.status == Status.BETTER
        rounds_used.append(t.rounds)
        if len(t.round_gains) >= 2:
            spreads.append(statistics.variance(t.round_gains))
    noise_sd = math.sqrt(statistics.fmean(spreads)) if spreads else 0.0  # pooled within-trial spread
    conf = decision_confidence(obj.confidence, len(looks))
    if rule.rule == Rule.TIMING:
        detectable = max(min_detectable_gain(noise_sd, rounds=looks[-1], confidence=conf, sessions=2), obj.min_gain)
    elif rule.rule == Rule.NOISY_SCORE:  # in the metric's unit: a difference, not a factor
        detectable = max(math.log1p(min_detectable_gain(noise_sd, rounds=looks[-1], confidence=conf, sessions=2)),
                         obj.min_gain_abs)
    else:
        detectable = obj.min_gain_abs  # no noise: any gain beyond the minimum is seen
    return {
        "rule": rule.rule.value,
        "noise": noise.value if not obj.is_time else Noise.NOISY.value,
        "false_accept_rate": false_accepts / trials,
        "false_accepts": false_accepts,
        "min_detectable_gain": detectable,
        "trials": trials,
        "noise_sd": noise_sd,  # per-round spread: of log(incumbent/candidate) for timing, of the score otherwise
        "mean_rounds": statistics.fmean(rounds_used),
        "rounds": obj.rounds,
        "max_rounds": obj.max_rounds,
        "confidence": obj.confidence,
        "min_gain": obj.min_gain,
        "min_gain_abs": obj.min_gain_abs,
        "protection": protection(),
    }
