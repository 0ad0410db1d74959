"""Evaluating one candidate: build it, run the evaluator in the sandbox, read the protocol into an Evaluation."""
