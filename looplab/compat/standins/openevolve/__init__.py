"""looplab's stand-in for the part of OpenEvolve that evaluators import (openevolve.evaluation_result)."""
