"""The machine's noise floor: time the incumbent against itself through the judge's own decision rule.

Every trial is an A/A comparison (same source, same binary) with the experiment's rounds, sequential
looks, confidence and min_gain, confirmed by a second session as the judge does. A confirmed
"better" verdict is a false acceptance. The per-round spread of
the log ratio gives the smallest gain the settings can reliably (80% power) detect.
"""

from __future__ import annotations

import math
import statistics

from looplab.evaluate import Evaluator
from looplab.experiment import Experiment, UserError
from looplab.judge import confirmed_timing
from looplab.sandbox import protection
from looplab.stats import decision_confidence, look_points, min_detectable_gain


async def calibrate(experiment: Experiment, evaluator: Evaluator, *, trials: int = 20,
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
    looks = look_points(obj.rounds, obj.max_rounds)
    false_accepts, rounds_used, spreads = 0, [], []
    for _ in range(trials):
        t = await confirmed_timing(evaluator, source, source, cases, looks=looks,
                                   confidence=obj.confidence, min_gain=obj.min_gain)
        if t.failure is not None:
            raise UserError(f"{experiment.root}: the incumbent failed while timing: {t.failure.reason} "
                            "(fix: repair the baseline or the harness)")
        false_accepts += t.status == "better"
        rounds_used.append(t.rounds)
        if len(t.round_gains) >= 2:
            spreads.append(statistics.variance(t.round_gains))
    noise_sd = math.sqrt(statistics.fmean(spreads)) if spreads else 0.0  # pooled within-trial spread
    conf = decision_confidence(obj.confidence, len(looks))
    detectable = max(min_detectable_gain(noise_sd, rounds=looks[-1], confidence=conf, sessions=2), obj.min_gain)
    return {
        "false_accept_rate": false_accepts / trials,
        "false_accepts": false_accepts,
        "min_detectable_gain": detectable,
        "trials": trials,
        "noise_sd": noise_sd,  # per-round spread of log(incumbent/candidate) on this machine
        "mean_rounds": statistics.fmean(rounds_used),
        "rounds": obj.rounds,
        "max_rounds": obj.max_rounds,
        "confidence": obj.confidence,
        "min_gain": obj.min_gain,
        "protection": protection(),
    }
