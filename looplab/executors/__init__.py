"""Where evaluations run. An executor is anything that evaluates like looplab.evaluation.evaluator.Evaluator:

    local   this machine (looplab.evaluation.evaluator.Evaluator itself; the default)
    ray     a Ray cluster (looplab.executors.ray.RayExecutor; pip install 'looplab[ray]')

judge() and calibrate() only call build() and evaluate() and read direction, search_cases and
holdout_cases, so either plugs in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from looplab.config import Experiment
    from looplab.records import Evaluation

EXECUTORS = ("local", "ray")


class Executor(Protocol):
    @property
    def direction(self) -> str: ...  # "minimize" | "maximize"
    @property
    def search_cases(self) -> list[str]: ...
    @property
    def holdout_cases(self) -> list[str]: ...

    def warm_up(self) -> None:
        """Start now what the first evaluation would wait for (a warm host); may do nothing."""
        ...

    async def build(self, source: str) -> object:
        """Compile ahead of timing (judge ignores the result); may do nothing where workers compile."""
        ...

    async def evaluate(self, source: str, cases: list[str], *, seed: int | None = None,
                       timed: bool = False) -> Evaluation:
        """Build, validate and measure one source on cases.

        timed: a timing run. The caller holds its timing lock; the machine that runs the evaluation
        pins it to a core of its own choosing (sandbox.timing_lock.timing_cpu, asked there)."""
        ...


def make_executor(experiment: Experiment, name: str = "local", *, ray_address: str | None = None) -> Executor:
    """The executor `--executor NAME [--ray-address ADDR]` asks for."""
    from looplab.errors import UserError

    if name == "local":
        from looplab.evaluation.evaluator import Evaluator

        return Evaluator(experiment)
    if name == "ray":
        from looplab.executors.ray import RayExecutor

        return RayExecutor(experiment, address=ray_address)
    raise UserError(f"--executor {name}: unknown executor (fix: use one of {', '.join(EXECUTORS)})")
