"""The engine benchmark's plumbing, end to end on one short document with the real model.

Timings are not asserted (the benchmark measures them); only that the table, plot and JSON
are written and that the counts agree with each other.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from slmscan.enginebench import BATCH_BUCKETS, run_engine_bench

pytestmark = [pytest.mark.model, pytest.mark.slow]

SHORT = """# Town library lends tools

The town library now lends drills, sewing machines and laptops as well as books. Volunteers
teach a free course in repairing bicycles every Saturday. The council says the scheme keeps
old devices out of landfill and expects two thousand visitors a month. Some shop owners worry
that fewer people will buy new tools.
"""


def test_engine_bench_writes_a_consistent_table_plot_and_json(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "short.md").write_text(SHORT, encoding="utf-8")
    (corpus / "other.md").write_text(SHORT.replace("Town", "City"), encoding="utf-8")
    out = tmp_path / "results"

    # A small answer bound keeps the usual way to seconds; its output is then mostly cut off.
    table = run_engine_bench("smollm2-135m", corpus, out, 1, None, usual_max_tokens=16)

    assert table == out / "engine-smollm2-135m.md"
    assert (out / "engine-smollm2-135m.png").stat().st_size > 0
    data = json.loads((out / "engine-smollm2-135m.json").read_text(encoding="utf-8"))
    [page] = data["pages"]  # --limit 1: only the first page by name
    assert page["page"] == "other.md" and page["error"] is None

    assert page["document_tokens"] > 0 and page["template_tokens"] > 0
    assert page["decoded_tokens"] > 0 and page["fed_tokens"] >= 0
    # One part: the document and every template token are evaluated exactly once.
    assert page["parts"] == 1
    assert page["prompt_tokens"] == page["document_tokens"] + page["template_tokens"]
    assert page["prompt_ratio"] == pytest.approx(1.0)
    # Every token the card evaluates goes through one timed llama.cpp evaluation; a decoded
    # token is evaluated alone, in a batch with what follows it, or (a section's last) never.
    buckets = page["eval_buckets"]
    assert set(buckets) == {label for label, _, _ in BATCH_BUCKETS}
    steps, batched = page["decode_steps"], page["decoded_batched"]
    assert steps > 0 and batched > 0 and steps + batched <= page["decoded_tokens"]
    evaluated = page["prompt_tokens"] + page["fed_tokens"] + steps + batched
    assert sum(tokens for _, tokens, _ in buckets.values()) == evaluated
    assert sum(calls for calls, _, _ in buckets.values()) == page["evals"]
    assert buckets["1"][0] == page["single_evals"] >= steps

    assert page["prefill_rate"] > 0 and page["decode_rate"] > 0
    assert page["wall"] > 0 and page["usual_wall"] > 0
    fed = page["prompt_tokens"] + page["fed_tokens"] + batched
    predicted = fed / page["prefill_rate"] + steps / page["decode_rate"]
    assert math.isclose(page["predicted"], predicted, rel_tol=1e-3)
    # The formula charges every decoded token a decode step.
    as_issued = page["wall"] / (
        (page["prompt_tokens"] + page["fed_tokens"]) / page["prefill_rate"]
        + page["decoded_tokens"] / page["decode_rate"]
    )
    assert math.isclose(page["overhead_as_issued"], as_issued, rel_tol=1e-3)
    assert math.isclose(page["speedup"], page["usual_wall"] / page["wall"], rel_tol=1e-3)
    # The page has a title, so the usual way makes one call per section and none for a title.
    assert [c["section"] for c in page["usual_calls"]] == [
        "keywords", "themes", "other", "summary", "signals", "behaviors", "technologies",
        "issues",
    ]  # fmt: skip
    assert all(c["prompt_tokens"] > page["document_tokens"] for c in page["usual_calls"])
    assert all(0 < c["completion_tokens"] <= 16 for c in page["usual_calls"])

    text = table.read_text(encoding="utf-8")
    assert "| other.md |" in text and "| **median** |" in text
    assert "## Acceptance" in text and "engine-smollm2-135m.png" in text
    # The ceiling is the usual way's time over the document's own prefill time.
    ceiling = page["usual_wall"] / (page["document_tokens"] / page["prefill_rate"])
    assert f"would be {ceiling:.1f}× faster than the usual way" in text
    # The bound the content sets adds the card's own decode steps to the document's prefill.
    document = page["document_tokens"] / page["prefill_rate"]
    bound = page["usual_wall"] / (document + page["decode_seconds"])
    assert bound < ceiling and f"would be {bound:.1f}× faster: the bound" in text
    # The prompt ratio is also shown with the fed quotes counted as prompt tokens.
    with_fed = (page["prompt_tokens"] + page["fed_tokens"]) / (
        page["document_tokens"] + page["template_tokens"]
    )
    assert f"counting the fed quotes as prompt tokens too | ≤ 1.1 | {with_fed:.2f} |" in text
