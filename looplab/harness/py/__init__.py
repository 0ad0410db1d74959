"""The Python harness library: a trusted supervisor and a confined worker that holds the candidate.

An experiment's harness/bench.py declares its cases (a function making one batch of argument
tuples from a random.Random the library gives it) and a check of one result, then calls main():

    from looplab.harness.py import main
    CASES = {"short_words": short_words, ...}
    def check(args, got): return None if type(got) is int and got == reference(*args) else f"expected ..."
    if __name__ == "__main__":
        raise SystemExit(main("levenshtein", CASES, check))

and runs as `{python} -I {experiment}/harness/bench.py --candidate {candidate} --nonce {nonce} {cases}`.
See supervisor.py for what is guaranteed, worker.py for what the candidate can do.
"""

from looplab.harness.py.supervisor import BASE_IMPORTS, Harness, Inputs, main, short

__all__ = ["BASE_IMPORTS", "Harness", "Inputs", "main", "short"]
