"""Short customer messages, drawn fresh for every evaluation: one per case from the evaluation's seed.

Each case is a kind of message (a template family); names, dates, amounts and wording are drawn from
the seed, so a run of the same seed shows the candidate and the incumbent the same messages, and a new
seed shows new ones. There is no answer key: the judge reads the message and both extractions.
"""

from __future__ import annotations

import random

FIRST = ["Maria", "Tom", "Chen", "Aisha", "Lukas", "Priya", "Diego", "Hannah", "Kofi", "Sofia", "Mateo", "Yuki"]
LAST = ["Lopez", "Becker", "Wei", "Khan", "Novak", "Sharma", "Alvarez", "Schmidt", "Mensah", "Rossi", "Tanaka"]
ITEMS = ["blue lamp", "desk chair", "coffee grinder", "rain jacket", "phone case", "bookshelf", "kettle"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
WORDS = {12: "twelve", 15: "fifteen", 20: "twenty", 30: "thirty", 40: "forty", 45: "forty-five", 60: "sixty",
         75: "seventy-five", 80: "eighty", 99: "ninety-nine"}


def _date(rng: random.Random) -> str:
    y, m, d = rng.choice([2024, 2025]), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice([f"{MONTHS[m - 1]} {d}, {y}", f"{d} {MONTHS[m - 1]} {y}", f"{y}-{m:02d}-{d:02d}",
                       f"{MONTHS[m - 1][:3]} {d}"])


def _amount(rng: random.Random) -> str:
    value = rng.choice([rng.randint(5, 400) + rng.choice([0, 0.5, 0.99, 0.2]), rng.randint(1000, 5000)])
    text = f"{value:,.2f}" if value != int(value) else f"{int(value):,}"
    return rng.choice([f"${text}", f"{text} EUR", f"£{text}", f"{text} dollars"])


def refund_request(rng: random.Random) -> str:
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    return rng.choice([
        f"Hi, this is {name}. I paid {_amount(rng)} on {_date(rng)} for the {rng.choice(ITEMS)} but it arrived "
        "broken. I'd like my money back.",
        f"Hello, I want a refund of {_amount(rng)} for order placed {_date(rng)}. The {rng.choice(ITEMS)} never "
        f"worked. Thanks, {name}",
    ])


def meeting_request(rng: random.Random) -> str:
    first = rng.choice(FIRST)
    return rng.choice([
        f"hey it's {first}, can we meet on {_date(rng)} to go over the launch plan? no money talk needed",
        f"Could we move our call to {_date(rng)}? Afternoon works best for me. - {first} {rng.choice(LAST)}",
    ])


def late_delivery(rng: random.Random) -> str:
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    return rng.choice([
        f"Ordered a {rng.choice(ITEMS)} on {_date(rng)}, still nothing. {_amount(rng)} is a lot to pay for "
        f"waiting. -- {name}",
        f"Where is my package? I paid {_amount(rng)} and the tracking page has not changed since {_date(rng)}. "
        f"{name}",
    ])


def invoice_question(rng: random.Random) -> str:
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    return (f"Dear team, invoice #{rng.randint(1000, 9999)} dated {_date(rng)} says {_amount(rng)}, but we agreed "
            f"on less. Could you check? Regards, {name}")


def no_details(rng: random.Random) -> str:
    return rng.choice(["Just wanted to say thanks for the quick help yesterday!",
                       "Is the shop open on public holidays?",
                       "Love the new app design, keep it up.",
                       "Can someone call me back? It's about my account."])


# Holdout kinds: never shown to the proposing model.
def two_people(rng: random.Random) -> str:
    sender, other = f"{rng.choice(FIRST)} {rng.choice(LAST)}", rng.choice(FIRST)
    return (f"{sender} here, writing for my colleague {other}: she was charged {_amount(rng)} twice on "
            f"{_date(rng)}. Please refund one of them.")


def amount_in_words(rng: random.Random) -> str:
    value = rng.choice(list(WORDS))
    return (f"yo, {rng.choice(FIRST)} again. paid like {WORDS[value]} bucks on {_date(rng)} and the "
            f"{rng.choice(ITEMS)} is already busted")


def numeric_date(rng: random.Random) -> str:
    d, m, y = rng.randint(13, 28), rng.randint(1, 12), rng.choice([2024, 2025])
    return (f"Meeting moved to {d:02d}/{m:02d}/{y}. Cost estimate for the repair: {_amount(rng)}. "
            f"Thanks, {rng.choice(FIRST)} {rng.choice(LAST)}")


CASES = {f.__name__: f for f in (refund_request, meeting_request, late_delivery, invoice_question, no_details,
                                  two_people, amount_in_words, numeric_date)}


def message(case: str, seed: int | str) -> str:
    """The message case `case` shows for this seed (KeyError for an unknown case)."""
    return CASES[case](random.Random(f"{seed}:{case}"))
