"""experiment.toml [resources]: what one evaluation needs on a Ray worker (the ray executor reads it).

    [resources]
    num_cpus = 1            # CPU slots per evaluation (fractions allowed)
    num_gpus = 0            # GPUs per evaluation
    custom = { fpga = 1 }   # any resource the nodes were started with (ray start --resources)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

RESERVED = ("CPU", "GPU", "memory", "object_store_memory")


class ResourcesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_cpus: float = Field(default=1, ge=0)
    num_gpus: float = Field(default=0, ge=0)
    custom: dict[str, float] = Field(default_factory=dict)

    @field_validator("custom")
    @classmethod
    def _plain_names(cls, v: dict[str, float]) -> dict[str, float]:
        for name, amount in v.items():
            if name in RESERVED or name.startswith("node:"):
                raise ValueError(f"{name!r} is not a custom resource (use num_cpus / num_gpus; nodes are chosen by looplab)")
            if amount <= 0:
                raise ValueError(f"{name!r} must be a positive amount")
        return v

    def ray_options(self) -> dict:
        """The Ray task options for one evaluation."""
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "resources": dict(self.custom)}
