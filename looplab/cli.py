"""looplab's commands. Parsing and printing only; the work lives in the modules they call."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import NoReturn

from looplab import __version__, layout

# Exit codes (README, Commands): 0 done; 1 a bug of looplab (a traceback); 2 something the user
# can fix (one line); 3 the run stopped because attempts kept failing outside the candidate;
# 128 + N stopped by signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 3
EXIT_INTERRUPTED = 130
LOCAL_MAX_TOKENS = 1024
DEFAULT_LOOP = 5


def main(argv: list[str] | None = None) -> int:
    from looplab.errors import UserError
    from looplab.stopping import Signalled
    from looplab.store.faults import disk_fault

    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserError as e:
        print(f"looplab: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Signalled as e:
        print(f"looplab: stopped by {e}; the attempts in flight are recorded as interrupted", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("looplab: interrupted; every finished attempt is recorded", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (e.g. `| head`); nothing left to say
        return 0
    except OSError as e:  # a full or read-only disk is the machine's state, not a bug: say so in one line
        fault = disk_fault(e, Path.cwd())
        if fault is None:
            raise
        print(f"looplab: error: {fault}", file=sys.stderr)
        return EXIT_USER_ERROR


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are user errors like any other: one line naming the fix, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (fix: see `{self.prog} --help`)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="looplab", description="Iterative implementation search: "
                "the model proposes, the evaluator decides.")
    p.add_argument("--version", action="version", version=f"looplab {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="run N attempts on an experiment (resumes where it left off)")
    run.add_argument("experiment", type=Path)
    run.add_argument("--model", help="openai:MODEL | anthropic:MODEL | command:CMD | replay:FILE.jsonl | local[:PATH]")
    run.add_argument("--loop", type=_positive_int,
                     help="attempts to run (default 5, or an OpenEvolve/Shinka folder's own setting)")
    run.add_argument("--temperature", type=float)
    run.add_argument("--max-tokens", type=_positive_int)
    run.add_argument("--budget-usd", type=_positive_float, help="stop before spending more than this")
    run.add_argument("--price", metavar="IN/OUT[/CACHED]",
                     help="USD per million tokens, for a model or server genai-prices does not know")
    run.add_argument("--base-url", help="OpenAI-compatible server (vLLM, Ollama, llama.cpp server, LM Studio)")
    run.add_argument("--model-timeout", type=_positive_float, default=600.0,
                     help="seconds one model call may take, its retries included (default 600)")
    run.add_argument("--workers", type=_positive_int, default=1, help="attempts in flight at once (default 1)")
    run.add_argument("--repair-turns", type=_count, metavar="N", help="turns a candidate that fails to extract, "
                     "screen, build or validate may be fixed in, shown its failure (default: [search] repair_turns)")
    run.add_argument("--reflect-every", type=int, default=0, metavar="N",
                     help="every N attempts the model rewrites the memory's insights (costs one call)")
    run.add_argument("--seed", type=int, help="random seed of the strategy mix (default: fresh)")
    run.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="where builds, validation and timing run (ray: pip install 'looplab[ray]')")
    run.add_argument("--ray-address", help="Ray cluster address (default: $RAY_ADDRESS or a local instance)")
    run.set_defaults(handler=_cmd_run)

    seed = sub.add_parser("seed", help="reset the live state to the baseline (keeps git history and winners/)")
    seed.add_argument("experiment", type=Path)
    seed.add_argument("--from-winner", metavar="HASH", help="start the new search from an archived winner")
    seed.set_defaults(handler=_cmd_seed)

    status = sub.add_parser("status", help="attempts by outcome, incumbent, speedup, usage and cost")
    status.add_argument("experiment", type=Path)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_cmd_status)

    ev = sub.add_parser("eval", help="screen, build, validate and measure one candidate file (no model)")
    ev.add_argument("experiment", type=Path)
    ev.add_argument("candidate", type=Path)
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(handler=_cmd_eval)

    cal = sub.add_parser("calibrate", help="time the incumbent against itself: false-acceptance rate, "
                         "smallest detectable gain")
    cal.add_argument("experiment", type=Path)
    cal.add_argument("--trials", type=_positive_int, default=20)
    cal.add_argument("--json", action="store_true")
    cal.set_defaults(handler=_cmd_calibrate)

    rep = sub.add_parser("report", help="regenerate SCORES.* and MEMORY.* from the store")
    rep.add_argument("experiment", type=Path)
    rep.set_defaults(handler=_cmd_report)

    new = sub.add_parser("new", help="create a runnable experiment NAME (experiment.toml, task, baseline, harness)")
    new.add_argument("name")
    new.add_argument("--lang", choices=["c", "python"], default="c")
    new.add_argument("--kind", choices=["function", "score", "files"], default="function",
                     help="a timed function (default), a scored program region, or whole files (score and files: Python)")
    new.add_argument("--dir", type=Path, default=Path("."), help="parent folder (default: here)")
    new.set_defaults(handler=_cmd_new)

    ui = sub.add_parser("ui", help="a live, read-only web dashboard of one or several experiments")
    ui.add_argument("experiments", nargs="*", type=Path, metavar="EXPERIMENT_DIR")
    ui.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; others warn)")
    ui.add_argument("--port", type=int, default=8765)
    ui.set_defaults(handler=_cmd_ui)

    exp = sub.add_parser("export-replies", help="write the run's model replies as a replay JSONL file")
    exp.add_argument("experiment", type=Path)
    exp.add_argument("-o", "--output", type=Path, help="default: EXPERIMENT/replies.jsonl")
    exp.set_defaults(handler=_cmd_export_replies)
    for command in (run, ev, cal):  # judged objectives: the model that compares outputs
        command.add_argument("--judge-model", metavar="SPEC", help="judged objectives: the model comparing outputs "
                             "(default: [judge] model in experiment.toml)")
        command.add_argument("--judge-base-url", help="judged objectives: the judge model's server")
        command.add_argument("--judge-price", metavar="IN/OUT[/CACHED]", help="judged objectives: the judge "
                             "model's USD per million tokens, when genai-prices does not know it")
    for command in (run, seed, status, ev, cal, rep, exp, ui):
        command.add_argument("--store", metavar="URL", help="store URL, e.g. postgresql://host/db "
                             "(default: $LOOPLAB_STORE, else EXPERIMENT/.looplab/looplab.db)")
    return p


def _count(text: str) -> int:
    return 0 if text.strip() == "0" else _positive_int(text)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a number above 0")
    return value


# ---------------------------------------------------------------- commands


def _cmd_run(args: argparse.Namespace) -> int:
    from looplab.compat import run_settings
    from looplab.config import load_experiment
    from looplab.evaluation.evaluator import Evaluator
    from looplab.loop import RunOptions, run_search
    from looplab.models import default_model_spec, provider_from_spec
    from looplab.models.priced import PricedProvider
    from looplab.models.usage import parse_price
    from looplab.report.closing import closing_lines
    from looplab.report.progress import make_progress
    from looplab.report.status import print_status
    from looplab.stopping import StopReason, until_signal

    experiment = load_experiment(args.experiment)
    # A fresh experiment evaluates its baseline first: its warm host starts importing now, beside looplab's
    # start. A resumed one starts it when the first model request is out (loop.run_attempt), off the launch.
    fresh = not experiment.store_path.exists() or bool(args.store)
    warming = Evaluator(experiment) if args.executor == "local" and experiment.config.evaluate.evaluator \
        and fresh else None
    if warming is not None:
        warming.warm_up()
    spec, why = (args.model, "--model") if args.model else default_model_spec()
    provider = provider_from_spec(spec, base_url=args.base_url)
    # A flag wins; else an OpenEvolve/Shinka folder's own setting; every setting not honoured is named.
    settings, peer_lines = run_settings(experiment.peer, loop=args.loop, temperature=args.temperature,
                                        max_tokens=args.max_tokens)
    loop, max_tokens = settings["loop"] or DEFAULT_LOOP, settings["max_tokens"]
    if provider.name.startswith("local") and args.max_tokens is None:
        max_tokens = min(max_tokens or LOCAL_MAX_TOKENS, LOCAL_MAX_TOKENS)  # a small CPU model rambles otherwise
    if args.workers > 1 and hasattr(provider, "n_threads"):
        provider.n_threads = 1  # builds and timing run beside the model: one thread each, no contention
    if args.price:
        provider = PricedProvider(provider, parse_price(args.price))
    options = RunOptions(loop=loop, temperature=settings["temperature"], max_tokens=max_tokens,
                         budget_usd=args.budget_usd, model_timeout_s=args.model_timeout, workers=args.workers,
                         reflect_every=max(0, args.reflect_every), seed=args.seed, store=args.store,
                         executor=args.executor, ray_address=args.ray_address, repair_turns=args.repair_turns)
    judge = _install_judge(experiment, args)
    progress = make_progress(experiment=experiment, budget_usd=args.budget_usd, store=args.store)
    progress.note(f"looplab {__version__}: {experiment.name} with {provider.name} (chosen by {why}); "
                  f"{loop} attempts" + (f"; outputs judged by {judge.name}" if judge else ""))
    for line in peer_lines:
        progress.note(line)
    try:
        summary = asyncio.run(until_signal(run_search(experiment, provider, options, progress)))
    finally:
        progress.close()
        del warming  # held until the run's evaluator took over its host
    print(f"stopped: {summary.stopped_because}")
    print_status(experiment, args.store)
    for line in closing_lines(experiment, args.store, summary.attempts, provider.name):
        print(line)
    if summary.stop is StopReason.ERRORS:
        return EXIT_RUN_FAILED
    return EXIT_USER_ERROR if summary.stop is StopReason.BUDGET_UNKNOWN else 0


def _cmd_seed(args: argparse.Namespace) -> int:
    from looplab.archive.winners import find_winner, read_winner, reset_live_state
    from looplab.config import load_experiment
    from looplab.evaluation.baseline import ensure_baseline
    from looplab.evaluation.evaluator import Evaluator
    from looplab.report.scores import write_all
    from looplab.store import open_store

    experiment = load_experiment(args.experiment)
    source = read_winner(experiment, find_winner(experiment, args.from_winner)) if args.from_winner else None
    reset_live_state(experiment)
    store = open_store(experiment, args.store)
    try:
        store.reset()  # a shared (PostgreSQL) store is not a file that reset_live_state can delete
        if source is not None:
            asyncio.run(ensure_baseline(experiment, store, Evaluator(experiment), source=source))
            write_all(store, experiment)
    finally:
        store.close()
    if source is not None:
        print(f"seeded {experiment.name} from winner {args.from_winner}")
    else:
        print(f"seeded {experiment.name} from the baseline {experiment.config.target.baseline}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from looplab.config import load_experiment
    from looplab.report.status import print_status, status_with_machine

    experiment = load_experiment(args.experiment)
    if args.json:
        print(json.dumps(status_with_machine(experiment, args.store), indent=2))
    else:
        print_status(experiment, args.store)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from looplab.config import load_experiment
    from looplab.evaluation.assess import evaluate_file, read_candidate

    experiment = load_experiment(args.experiment)
    source = read_candidate(experiment, args.candidate)
    _install_judge(experiment, args)
    verdict = asyncio.run(evaluate_file(experiment, source, args.store))
    if args.json:
        print(json.dumps(verdict, indent=2))
    else:
        speed = f" x{verdict['speedup']:.3f}" if verdict.get("speedup") else ""
        print(f"{verdict['category']}{speed}: {verdict['reason']}")
        for name, case in verdict["cases"].items():
            value = "judged" if case["median"] is None else f"median {case['median']:.2f} {verdict['unit']}"
            line = f"  {name}: " + (value if case["ok"] else f"FAILED {case['error']}")
            print(line)
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from looplab.acceptance.calibrate import calibrate
    from looplab.config import load_experiment
    from looplab.evaluation.baseline import ensure_baseline
    from looplab.evaluation.evaluator import Evaluator
    from looplab.store import open_store

    experiment = load_experiment(args.experiment)
    _install_judge(experiment, args)
    evaluator = Evaluator(experiment)
    store = open_store(experiment, args.store)
    try:
        asyncio.run(ensure_baseline(experiment, store, evaluator))
        incumbent = store.incumbent()
    finally:
        store.close()
    source = incumbent.source if incumbent is not None else None
    result = asyncio.run(calibrate(experiment, evaluator, trials=args.trials, source=source))
    if args.json:
        print(json.dumps(result, indent=2))
    elif result["rule"] == "judged":
        from looplab.acceptance.judged import calibration_lines

        print("\n".join(calibration_lines(experiment.name, result)))
    else:
        print(f"{experiment.name}: {args.trials} A/A trials of the incumbent against itself")
        print(f"  false-acceptance rate: {result['false_accept_rate']:.3f}")
        print(f"  smallest reliably detectable gain: {result['min_detectable_gain']:.3f}")
    return 0


def _install_judge(experiment, args: argparse.Namespace):
    from looplab.acceptance import pairwise

    return pairwise.install_for(experiment, model=args.judge_model, base_url=args.judge_base_url,
                                price=args.judge_price)


def _cmd_report(args: argparse.Namespace) -> int:
    from looplab.config import load_experiment
    from looplab.report.html import write_html_report
    from looplab.report.scores import write_all
    from looplab.store import open_store

    experiment = load_experiment(args.experiment)
    store = open_store(experiment, args.store)
    try:
        write_all(store, experiment)
        html = write_html_report(store, experiment)
    finally:
        store.close()
    print(f"wrote {experiment.root / layout.SCORES_MD}, {experiment.root / layout.MEMORY_MD} and {html}")
    return 0


def _cmd_new(args: argparse.Namespace) -> int:
    from looplab.scaffold import scaffold

    root = scaffold(args.name, args.lang, args.dir, args.kind)
    baseline = f"{root}/solver" if args.kind == "files" else f"{root}/naive.{'c' if args.lang == 'c' else 'py'}"
    print(f"created {root}\nnext: looplab eval {root} {baseline}")
    return 0


def _cmd_ui(args: argparse.Namespace) -> int:
    from looplab.ui import serve

    serve(args.experiments, host=args.host, port=args.port, store=args.store)
    return 0


def _cmd_export_replies(args: argparse.Namespace) -> int:
    from looplab.config import load_experiment
    from looplab.models.replay import write_replies
    from looplab.store import open_store

    experiment = load_experiment(args.experiment)
    out = args.output or experiment.root / "replies.jsonl"
    store = open_store(experiment, args.store)
    try:
        count = write_replies(out, store.replies(repairs=True))
    finally:
        store.close()
    print(f"wrote {count} replies to {out}; replay them with --model replay:{out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
