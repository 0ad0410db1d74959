"""A judged experiment for tests, and judge models for the wire servers (tests/wire_servers.py).

The target is a prompt file (prompt.md); the harness "runs" it with a deterministic stand-in for a task
model: each case draws a fresh message from {seed} about its topic, and the prompt's lines set how good
the answer is,

    level: 3                  every answer has level 3
    level for refund: 5       answers about refunds have level 5
    jitter: 2                 the level moves by up to ±2 at random (OS randomness): a sampling task model
    broken                    the answer fails the harness's hard check (invalid)

and prints {"case", "ok", "input": the message, "output": {"topic", "ref", "level", "text"}}. A judge that
prefers the better output reads the levels of "Output 1" and "Output 2" from the request it receives.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from looplab.config import Experiment, load_experiment

SEARCH = {"orders": "order", "refunds": "refund", "meetings": "meeting", "invoices": "invoice",
          "deliveries": "delivery", "accounts": "account"}
HOLDOUT = {"hidden_warranty_case": "warranty", "hidden_password_case": "password"}
MARKER = "PROMPT-SOURCE-MARKER-7f3a"  # in every prompt: the judge must never see it

_HARNESS = r'''
import json, os, random, re, sys
folder, seed, nonce, cases = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
prompt = open(os.path.join(folder, "prompt.md")).read()
topics = TOPICS
default = int((re.search(r"^level:\s*(\d+)", prompt, re.M) or [0, "3"])[1])
per_topic = {w: int(v) for w, v in re.findall(r"^level for (\w+):\s*(\d+)", prompt, re.M)}
jitter = int((re.search(r"^jitter:\s*(\d+)", prompt, re.M) or [0, "0"])[1])
noise = random.Random(os.urandom(16))
for case in cases:
    if case not in topics:
        print(json.dumps({"case": case, "nonce": nonce, "ok": False, "error": "unknown case"}))
        continue
    rng = random.Random(f"{seed}:{case}")
    topic, ref = topics[case], rng.randint(1, 10**9)
    message = f"Customer message {ref} about my {topic}. Please help."
    if re.search(r"^broken", prompt, re.M):
        print(json.dumps({"case": case, "nonce": nonce, "ok": False, "error": "the answer is not valid JSON"}))
        continue
    level = per_topic.get(topic, default) + (noise.randint(-jitter, jitter) if jitter else 0)
    output = {"topic": topic, "ref": ref, "level": level, "text": f"answer of level {level}"}
    print(json.dumps({"case": case, "nonce": nonce, "ok": True, "input": message, "output": output}))
'''


def prompt(*lines: str) -> str:
    return "\n".join([f"# Extraction prompt ({MARKER})", *lines]) + "\n"


def judged_experiment(root: Path, *, name: str = "judged", baseline: str = prompt("level: 3"),
                      rounds: int = 2, max_rounds: int = 4, judge: str = "", holdout: bool = True) -> Experiment:
    dest = root / name
    dest.mkdir(parents=True)
    topics = {**SEARCH, **(HOLDOUT if holdout else {})}
    (dest / "harness.py").write_text(_HARNESS.replace("TOPICS", repr(topics)))
    (dest / "prompt.md").write_text(baseline)
    (dest / "RUBRIC.md").write_text("The answer with the higher level is better. Equal levels tie.\n")
    (dest / "EXPERIMENT.md").write_text("Improve prompt.md: answers should have a higher level.\n")
    (dest / "experiment.toml").write_text(f"""
[target]
language = "markdown"
files = ["prompt.md"]
[evaluate]
command = "{sys.executable} {{experiment}}/harness.py {{candidate}} {{seed}} {{nonce}} {{cases}}"
timeout_s = 30
[cases]
search = {json.dumps(list(SEARCH))}
holdout = {json.dumps(list(HOLDOUT) if holdout else [])}
[objective]
kind = "judged"
rounds = {rounds}
max_rounds = {max_rounds}
[judge]
{judge}
""")
    return load_experiment(dest)


def packed(text: str) -> str:
    """A candidate's source: the target's files packed (looplab/filesets.py)."""
    from looplab.filesets import pack

    return pack({"prompt.md": text})


# --- judges: reply functions for OpenAIServer / AnthropicServer (body -> reply text) ---

def user_text(body: dict) -> str:
    """The user turn's text, from an OpenAI or an Anthropic request (content as a string or as blocks)."""
    parts = []
    for m in body.get("messages", []):
        if m.get("role") == "user":
            content = m["content"]
            parts += [content] if isinstance(content, str) else [b.get("text", "") for b in content]
    return "\n".join(parts)


def shown_outputs(body: dict) -> tuple[str, str]:
    """The two outputs' texts as the judge received them."""
    text = user_text(body)
    blocks = {n: re.search(rf"<<<OUTPUT {n} (\w+)>>>\n(.*?)\n<<<END OUTPUT {n} \1>>>", text, re.S) for n in (1, 2)}
    assert blocks[1] and blocks[2], text
    return blocks[1].group(2), blocks[2].group(2)


def _level(shown: str) -> int:
    return int(json.loads(shown)["level"])


def verdict(better: str, reason: str = "compared") -> str:
    return json.dumps({"reason": reason, "better": better})


def first_judge(body: dict) -> str:
    """Always prefers whatever is shown first."""
    return verdict("1", "the first one reads better")


def better_judge(body: dict) -> str:
    """Prefers the output with the higher level, whichever position it has."""
    one, two = (_level(t) for t in shown_outputs(body))
    return verdict("1" if one > two else "2" if two > one else "tie")
