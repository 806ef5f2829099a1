"""Hand-made field reports: short documents, unique by number, for batch tests and benchmarks."""

from __future__ import annotations

import random

_SUBJECTS = [
    "Heat pumps", "Rooftop solar", "Community batteries", "Electric buses", "Wind farms",
    "Rail freight", "Urban trees", "Water meters", "Home insulation", "Bike lanes",
    "District heating", "Tidal power",
]  # fmt: skip
_CLAIMS = [
    "cut household bills by {n} percent in the first winter",
    "were installed in {n} towns across the region last year",
    "need about {n} hours of maintenance a year",
    "drew complaints from {n} residents during the trial",
    "paid for themselves within {n} years according to the council",
    "created {n} local jobs in installation and repair",
]
_ASIDES = [
    "Critics say the figures are too optimistic.",
    "The utility plans a larger rollout next spring.",
    "Insurers have started to offer lower premiums.",
    "Engineers warn that supply chains remain fragile.",
    "Local schools now teach the basics to pupils.",
    "A national survey found broad public support.",
]


def variation(rng: random.Random, i: int) -> tuple[str, str]:
    """A hand-made document: a file name and a text of 3 to 8 sentences, unique by number."""
    subject = rng.choice(_SUBJECTS)
    sentences = [
        f"{subject} {rng.choice(_CLAIMS).format(n=rng.randint(2, 90))}."
        for _ in range(rng.randint(2, 5))
    ]
    sentences += rng.sample(_ASIDES, rng.randint(1, 3))
    sentences.append(f"This is field report number {i}.")
    title = f"{subject} report {i}"
    if i % 3 == 0:
        return f"report-{i:03d}.md", f"# {title}\n\n" + " ".join(sentences) + "\n"
    return f"report-{i:03d}.txt", f"{title}\n\n" + " ".join(sentences) + "\n"
