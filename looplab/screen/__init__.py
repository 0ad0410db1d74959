"""Screening before any build: the static policy, the compiler's and the object's checks, and novelty."""
