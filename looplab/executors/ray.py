"""The ray executor: each evaluation is a Ray task on a cluster; results come back as Evaluations.

What travels: the experiment folder as a tarball (executors/bundle.py: put in Ray's object store once,
fetched once per node), the candidate source, the case names and the seed. The worker unpacks the
experiment into its temp dir and runs the local Evaluator there, sandbox included.

Timing runs (judge asks for timed=True) go to one node per executor, so every round of a paired session,
and every session of this loop, is measured on the same machine; on the node they hold the node's
timing lock, so measurements never overlap there, and run on a core that node picks. A task lost to
the machinery (worker died, node lost, object lost) is retried once (on another node when one is
alive); lost twice, it comes back as an INFRA_ERROR evaluation, never as a failure of the candidate.
Ray is imported only here.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

from looplab import __version__
from looplab.config import Experiment
from looplab.errors import UserError
from looplab.evaluation.evaluator import Evaluator
from looplab.executors.bundle import pack
from looplab.executors.worker import WorkerResult, evaluate_bundle
from looplab.records import Evaluation, Outcome
from looplab.resources import ResourcesConfig

try:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
except ImportError:  # optional: pip install 'looplab[ray]'
    ray = None  # type: ignore[assignment]

ADDRESS_ENV = "RAY_ADDRESS"
NAMESPACE = "looplab"
TRIES = 2  # the first run and one retry
KEPT = 1000  # placements and infra failures remembered (the newest), so a long run does not grow without bound


def _remote_evaluate(*args: Any) -> WorkerResult:
    """The Ray task: evaluate_bundle plus where it ran and what Ray gave it."""
    ctx = ray.get_runtime_context()
    result = evaluate_bundle(*args)
    result.node, result.address = ctx.get_node_id(), ray.util.get_node_ip_address()
    result.assigned = {k: float(v) for k, v in ctx.get_assigned_resources().items()}
    return result


@dataclass
class Placement:
    """Where one finished task ran (kept for `status`, debugging and tests)."""

    node: str
    address: str
    pid: int
    timing: bool
    assigned: dict[str, float]
    timed_from: float | None
    timed_until: float | None


def connect(address: str | None = None) -> None:
    """Join the cluster at address ($RAY_ADDRESS when None; none: a Ray instance on this machine)."""
    if ray is None:
        raise UserError("--executor ray: Ray is not installed (fix: pip install 'looplab[ray]')")
    if ray.is_initialized():
        return
    address = address or os.environ.get(ADDRESS_ENV) or None
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.RayError) as e:
        detail = " ".join(str(e).split())[:300]
        raise UserError(f"--ray-address {address}: cannot join the Ray cluster: {detail} (fix: start it with "
                        "`ray start --head` and pass its HOST:PORT; on a cluster with token authentication "
                        "export RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN or ~/.ray/auth_token)") from None


class RayExecutor:
    """The Evaluator's interface (evaluate, build, direction, search/holdout cases), evaluated on Ray."""

    def __init__(self, experiment: Experiment, *, address: str | None = None,
                 resources: ResourcesConfig | None = None) -> None:
        connect(address)
        self.experiment = experiment
        self.resources = resources or experiment.config.resources
        _check_feasible(self.resources)
        self._local = Evaluator(experiment)  # answers the questions judge asks; never runs anything here
        bundle, self.digest = pack(experiment.root)
        self._bundle = ray.put(bundle)
        self._task = ray.remote(max_retries=0)(_remote_evaluate)  # retries are ours: once, elsewhere
        self.timing_node: str | None = None
        self.placements: list[Placement] = []  # the newest KEPT
        self.infra_failures: list[str] = []  # the newest KEPT

    @property
    def direction(self) -> str:
        return self._local.direction

    @property
    def search_cases(self) -> list[str]:
        return self._local.search_cases

    @property
    def holdout_cases(self) -> list[str]:
        return self._local.holdout_cases

    def warm_up(self) -> None:
        """Nothing: the nodes keep their own builds and hosts."""

    async def build(self, source: str) -> None:
        """Nothing to do here: each worker compiles before taking its node's timing lock (worker.py)."""

    async def evaluate(self, source: str, cases: list[str], *, seed: int | None = None,
                       timed: bool = False) -> Evaluation:
        """Build, validate and (timed, as judge asks for timing) measure, on the cluster."""
        seed = secrets.randbelow(2**31) if seed is None else seed  # a retry sees the same inputs
        failed_on: str | None = None
        problems: list[str] = []
        for _ in range(TRIES):
            node = self.timing_node if timed else None
            ref = self._task.options(**self._options(node, avoid=failed_on)).remote(
                self._bundle, self.digest, self.experiment.root.name, source, list(cases), seed, timed, __version__)
            try:
                result: WorkerResult = await ref
            except ray.exceptions.RayError as e:
                problems.append(_describe(e))
                _keep(self.infra_failures, problems[-1])
                failed_on = node
                if timed:
                    self.timing_node = None  # timing moves to a node that is alive
                continue
            if timed:
                self.timing_node = result.node
            _keep(self.placements, Placement(result.node, result.address, result.pid, timed, result.assigned,
                                             result.timed_from, result.timed_until))
            ev = result.evaluation
            if problems:
                ev.log = (ev.log + f"\n[ray: retried on {result.address} after: {problems[0]}]").lstrip()
            return ev
        return Evaluation(ok=False, failure=Outcome.INFRA_ERROR, seed=seed,
                          reason=f"ray: the evaluation was lost {TRIES} times: " + "; then ".join(problems))

    def _options(self, node: str | None, *, avoid: str | None) -> dict:
        options = self.resources.ray_options()
        if node is not None:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=True)
        elif avoid is not None:
            other = next((n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] != avoid
                          and _fits(n.get("Resources", {}), self.resources)), None)
            if other is not None:
                options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                    other, soft=True, _spill_on_unavailable=True)
        return options



def _keep(kept: list, item: object) -> None:
    kept.append(item)
    del kept[:-KEPT]


def _fits(node_resources: dict, need: ResourcesConfig) -> bool:
    wanted = {"CPU": need.num_cpus, "GPU": need.num_gpus, **need.custom}
    return all(node_resources.get(name, 0) >= amount for name, amount in wanted.items() if amount > 0)


def _check_feasible(need: ResourcesConfig) -> None:
    """An evaluation no node can take would wait forever: say so now, naming the field."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n["Alive"]]
    if any(_fits(r, need) for r in nodes):
        return
    offered = ", ".join(sorted({k for r in nodes for k in r if not k.startswith("node:")})) or "nothing"
    raise UserError(f"experiment.toml: field 'resources': no node of the Ray cluster has {need.ray_options()} "
                    f"(it offers {offered}) (fix: lower the request, or start nodes with "
                    "`ray start --resources='{\"NAME\": N}'` / GPUs)")


def _describe(e: Exception) -> str:
    first = " ".join(str(e).split())
    return f"{type(e).__name__}: {first[:200]}"
