"""Stand-ins for the few peer-tool modules evaluators import, put on an evaluator's sys.path (after
everything installed) by looplab/compat/runners only: never importable as top-level packages of looplab."""
