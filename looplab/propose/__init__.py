"""Proposing: what the model is shown (prompt, context, memory, parents) and how its reply becomes a candidate
(extract, repair turns, the reply grammar, reflection)."""
