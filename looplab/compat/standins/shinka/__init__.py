"""looplab's stand-in for the part of ShinkaEvolve that evaluators import (shinka.core.run_shinka_eval)."""
