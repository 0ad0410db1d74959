"""looplab: iterative implementation search. The model proposes; the evaluator decides."""

__version__ = "0.1.0"
