"""Candidate key phrases of a document, found without a model.

Keywords on a card are chosen by the model from these candidates only, so every keyword
occurs in the document by construction. Candidates are runs of one to three content words
(no stop words at either end, no punctuation inside), scored by how often they occur and how
early they first appear, with a bonus for phrases of several words.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

_TOKEN = re.compile(r"[^\W_][\w'’.-]*[^\W_]|[^\W_]|[.,;:!?()\"“”]")
_JOINERS = frozenset({"of", "and"})  # allowed inside a phrase: "trial and error", "rise of"
STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each even few for
    from further had has have having he her here hers herself him himself his how i if in into
    is it its itself just let like made make many may me might more most much must my myself
    new no nor not now of off often on once one only or other our ours ourselves out over own
    per same say said says she should since so some still such than that the their theirs them
    themselves then there these they this those through to too under until up upon us use used
    using very via was we were what when where which while who whom why will with within
    without would yet you your yours yourself yourselves however although though whether among
    across according around another every first get got including way well year years time
    times people thing things lot that’s it’s there’s don’t roughly required
    """.split()  # noqa: SIM905 - a word list reads better as prose
)


def candidate_phrases(text: str, limit: int = 30) -> list[str]:
    """Up to `limit` key-phrase candidates, best first, each written as in the document."""
    matches = list(_TOKEN.finditer(text))
    tokens = [m.group() for m in matches]
    # A phrase's words must be separated by white space alone: "1.2°C" is not "1.2 C".
    joined = [text[a.end() : b.start()].isspace() for a, b in itertools.pairwise(matches)]
    counts: Counter[str] = Counter()
    first_seen: dict[str, int] = {}
    surface: dict[str, str] = {}
    for i in range(len(tokens)):
        for n in (1, 2, 3):
            words = tokens[i : i + n]
            if len(words) < n or not all(_is_word(w) for w in words):
                break
            if n > 1 and not joined[i + n - 2]:
                break
            lowered = [w.lower() for w in words]
            if (
                lowered[0] in STOP_WORDS
                or lowered[-1] in STOP_WORDS
                or any(w.isdigit() for w in lowered)
            ):
                continue
            if any(w in STOP_WORDS and w not in _JOINERS for w in lowered[1:-1]):
                continue
            if n == 1 and (len(lowered[0]) < 4 or lowered[0].rstrip(".").isdigit()):
                continue
            key = " ".join(lowered)
            counts[key] += 1
            first_seen.setdefault(key, i)
            surface.setdefault(key, " ".join(words))
    if not counts:
        return []
    total = max(1, len(tokens))

    def score(key: str) -> float:
        n = key.count(" ") + 1
        early = 1.0 + 0.5 * (1 - first_seen[key] / total)
        return counts[key] * early * (1.0 + 0.6 * (n - 1))

    lower_words = {t for t in tokens if t.islower()}

    def is_name(key: str) -> bool:
        return all(w.lower() not in lower_words for w in surface[key].split())

    ranked = sorted((k for k in counts if counts[k] > 1 or is_name(k)), key=score, reverse=True)
    chosen: list[str] = []
    for key in ranked:
        # A phrase inside a better-ranked one (or containing it) adds little.
        if any(key in other or other in key for other in chosen):
            continue
        chosen.append(key)
        if len(chosen) == limit:
            break
    # Words the text also writes in lower case are ordinary words; others are names.
    return [
        " ".join(w.lower() if w.lower() in lower_words else w for w in surface[k].split())
        for k in chosen
    ]


def _is_word(token: str) -> bool:
    return token[0].isalnum()
