"""`looplab status`: the store's status with what this machine adds (sandbox, default model), printed."""

from __future__ import annotations

from looplab.config import Experiment
from looplab.report.scores import cost_split, status_dict
from looplab.store import open_store


def status_with_machine(experiment: Experiment, store_url: str | None = None) -> dict:
    from looplab.models import default_model_spec
    from looplab.sandbox.command import protection

    try:  # read-only: a store another loop holds locked still answers at once, and nothing is migrated
        store = open_store(experiment, store_url, read_only=True)
    except FileNotFoundError:  # never run: an empty store says so
        store = open_store(experiment, store_url)
    try:
        status = status_dict(store, experiment)
    finally:
        store.close()
    status["sandbox"] = protection()
    spec, why = default_model_spec()
    status["model"] = {"default": spec, "why": why}  # what `run` without --model would use
    return status


def print_status(experiment: Experiment, store_url: str | None = None) -> None:
    s = status_with_machine(experiment, store_url)
    best, usage = s["best"], s["usage"]
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(s["outcomes"].items())) or "none yet"
    speed = f"x{best['speedup']:.3f}" if best.get("speedup") else "n/a"
    metric = f"{best['metric']:.2f} {best['unit']}" if best.get("metric") is not None else "n/a"
    cost = "unknown" if usage["cost_usd"] is None else f"${usage['cost_usd']:.4f}"
    cost += cost_split(s)  # proposals and judge apart, once a judge model was called
    print(f"{s['experiment']}: {s['attempts']} attempts ({outcomes})")
    print(f"  best: {metric}, {speed} over the baseline, commit {best.get('commit') or '-'}")
    print(f"  usage: {usage['total_tokens']} tokens ({usage['prompt_tokens']} prompt, "
          f"{usage['completion_tokens']} completion, {usage['cached_tokens']} cached), cost {cost}")
    if s["loops"]:
        running = ", ".join(f"{lp['host']}:{lp['pid']} (beat {lp['last_beat_s']:.0f} s ago)" for lp in s["loops"])
        print(f"  running now: {running}")
    print(f"  sandbox: {s['sandbox']}")
    print(f"  model without --model: {s['model']['default']} ({s['model']['why']})")
