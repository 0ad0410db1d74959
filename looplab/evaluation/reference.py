"""A machine's reference per case (e.g. what a tuned BLAS reaches), so scores read as "% of reference".

The file is JSON: {"what": "NumPy matmul, one thread", "cases": {"case": {"median_us": 1422.5, ...}}};
`key` names the per-case value, in the objective's unit.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Reference:
    what: str
    values: dict[str, float]  # case -> value in the objective's unit

    def percent(self, case: str, value: float | None, direction: str) -> float | None:
        """How close `value` comes to the reference on `case`, in percent (100 = as good)."""
        ref = self.values.get(case)
        if ref is None or value is None or value <= 0 or ref <= 0:
            return None
        return 100.0 * (ref / value if direction == "minimize" else value / ref)


def read_reference(path: Path, key: str) -> Reference:
    """Raises ValueError with a message that names what is wrong."""
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise ValueError(f"cannot read {path.name}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path.name} is not valid JSON: {e}") from None
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, dict):
        raise ValueError(f'{path.name} has no "cases" object')
    values: dict[str, float] = {}
    for case, entry in cases.items():
        value = entry.get(key) if isinstance(entry, dict) else None
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise ValueError(f'{path.name}: case "{case}" has no positive number "{key}"')
        values[case] = float(value)
    return Reference(what=str(data.get("what", path.name)), values=values)
