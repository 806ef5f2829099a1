"""The engine benchmark as Markdown (per page, acceptance checks, where time goes) and a plot."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from .enginebench import (
    BATCH_BUCKETS,
    DECODE_PROBE,
    TARGET_OVERHEAD,
    TARGET_PROMPT_RATIO,
    TARGET_SPEEDUP,
    BenchRun,
    PageResult,
)
from .errors import UsageError


def write_results(run: BenchRun, stem: Path, *, plot: bool = False) -> Path:
    """Write `<stem>.json` and `<stem>.md` (and `<stem>.png` if asked); return the table's path."""
    data = {k: v for k, v in asdict(run).items() if k != "pages"}
    data["pages"] = [p.to_json() for p in run.pages]
    stem.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    table = stem.with_suffix(".md")
    table.write_text(render_table(run, plot_name=stem.with_suffix(".png").name), encoding="utf-8")
    if plot:
        plot_results(run, stem.with_suffix(".png"))
    return table


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def _check(ok: bool) -> str:
    return "**pass**" if ok else "**FAIL**"


def render_table(run: BenchRun, plot_name: str | None = None) -> str:
    """The run as Markdown: per-page rows, medians and totals, acceptance checks, time split."""
    done = run.done
    lines = [
        f"# Engine benchmark: {run.model}",
        "",
        f"Model file `{run.model_file}`, {run.threads} threads, n_ctx {run.n_ctx}, attention "
        f"keys cached as {run.key_cache}, "
        f"llama-cpp-python {run.llama_cpp_version}; {len(done)} pages, both ways in one process "
        "on the same model file, alternating which way goes first.",
        "",
        "- **slmscan**: `Scanner.analyse` (one prefill per document, scaffolding fed, content "
        "decoded under per-field constraints). Token counts from the card's provenance.",
        f"- **usual**: llama-cpp-python `{run.usual_api}`, one call per card section (keywords; "
        "themes; category and type; summary; signals; behaviors; technologies; issues; a title "
        "only when the page has none), the section's instruction first and the article after "
        f"it, temperature 0, max_tokens {run.usual_max_tokens}. It is not asked for evidence "
        "quotes (slmscan's rows carry them), so its task is smaller: the speed-up is a lower "
        "bound.",
        "- **prefill / decode**: the engine's own rates on the same loaded model, measured on "
        "each page right after its card: the page's document fed in one go from position 0, "
        f"then {DECODE_PROBE} tokens of plain argmax decoding. Reference at the start of the "
        f"run (512 tokens from position 0): prefill {run.reference_prefill_rate:.0f} tok/s, "
        f"decode {run.reference_decode_rate:.0f} tok/s. CPU time of this process ÷ (wall × "
        f"threads) = {run.cpu_share:.2f} (single-threaded work, such as the usual way's "
        "grammar over the vocabulary, can lower it as much as other jobs can); load average "
        f"{run.load_start:.2f} at the start, {run.load_end:.2f} at the end.",
        "- **predicted** = (prompt + fed tokens + decoded tokens evaluated in a batch) ÷ "
        "prefill rate + decoded tokens evaluated alone ÷ decode rate (a chosen token waits and "
        "is evaluated together with the scaffolding fed after it; tokens never evaluated, like "
        "the last choice of a section, cost nothing and are charged nothing); "
        "**overhead** = slmscan wall ÷ predicted; **prompt ratio** = prompt tokens ÷ "
        "(document + template tokens); **complete** = the card validates and no section is "
        "empty (`Card.missing_sections()`), for both ways.",
        "",
        "| page | doc tok | template | prompt tok | fed | decoded | prefill tok/s | "
        "decode tok/s | predicted s | slmscan s | overhead | prompt ratio | complete | "
        "usual s | usual complete | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|---:|",
    ]

    def missing(names: list[str]) -> str:
        return "yes" if not names else "no: " + ", ".join(names)

    for p in run.pages:
        if not p.ok:
            lines.append(f"| {p.page} | failed: {p.error} |" + " |" * 14)
            continue
        notes = []
        if p.parts > 1:
            notes.append(f"{p.parts} parts")
        if p.usual_truncated:
            notes.append("usual: article cut to fit")
        name = p.page + (f" ({'; '.join(notes)})" if notes else "")
        lines.append(
            f"| {name} | {p.document_tokens} | {p.template_tokens} | {p.prompt_tokens} | "
            f"{p.fed_tokens} | {p.decoded_tokens} | {p.prefill_rate:.0f} | {p.decode_rate:.0f} | "
            f"{p.predicted:.2f} | {p.wall:.2f} | {p.overhead:.2f} | {p.prompt_ratio:.2f} | "
            f"{missing(p.missing)} | {p.usual_wall:.1f} | {missing(p.usual_missing)} | "
            f"{p.speedup:.1f}× |"
        )
    if not done:
        return "\n".join(lines) + "\n"

    def med(attr: str) -> float:
        return _median([float(getattr(p, attr)) for p in done])

    complete = sum(p.complete for p in done)
    usual_complete = sum(p.usual_complete for p in done)
    lines.append(
        f"| **median** | {med('document_tokens'):.0f} | {med('template_tokens'):.0f} | "
        f"{med('prompt_tokens'):.0f} | {med('fed_tokens'):.0f} | {med('decoded_tokens'):.0f} | "
        f"{med('prefill_rate'):.0f} | {med('decode_rate'):.0f} | {med('predicted'):.2f} | "
        f"{med('wall'):.2f} | **{med('overhead'):.2f}** | **{med('prompt_ratio'):.2f}** | "
        f"{complete}/{len(done)} | {med('usual_wall'):.1f} | {usual_complete}/{len(done)} | "
        f"**{med('speedup'):.1f}×** |"
    )
    total = {
        a: sum(getattr(p, a) for p in done)
        for a in (
            "document_tokens",
            "template_tokens",
            "prompt_tokens",
            "fed_tokens",
            "decoded_tokens",
            "predicted",
            "wall",
            "usual_wall",
        )
    }
    lines.append(
        f"| **total** | {total['document_tokens']} | {total['template_tokens']} | "
        f"{total['prompt_tokens']} | {total['fed_tokens']} | {total['decoded_tokens']} | | | "
        f"{total['predicted']:.1f} | {total['wall']:.1f} | "
        f"{total['wall'] / total['predicted']:.2f} | "
        f"{total['prompt_tokens'] / (total['document_tokens'] + total['template_tokens']):.2f} | "
        f" | {total['usual_wall']:.1f} | | {total['usual_wall'] / total['wall']:.1f}× |"
    )

    speedup, overhead, ratio = med("speedup"), med("overhead"), med("prompt_ratio")
    as_issued, with_fed = med("overhead_as_issued"), med("prompt_ratio_with_fed")
    partial = "" if len(done) >= 24 else f" (only {len(done)} pages: not the full corpus)"
    lines += [
        "",
        f"## Acceptance (medians over the pages){partial}",
        "",
        "| check | target | measured | result |",
        "|---|---|---:|---|",
        f"| speed-up over the usual way | ≥ {TARGET_SPEEDUP:.0f}× | {speedup:.1f}× | "
        f"{_check(speedup >= TARGET_SPEEDUP)} |",
        f"| complete cards, slmscan vs usual | at least as many | {complete} vs "
        f"{usual_complete} of {len(done)} | {_check(complete >= usual_complete)} |",
        "| overhead, the issue's formula: wall ÷ ((prompt + fed) ÷ prefill rate + decoded ÷ "
        f"decode rate) | ≤ {TARGET_OVERHEAD} | {as_issued:.2f} | "
        f"{_check(as_issued <= TARGET_OVERHEAD)} |",
        "| overhead, stricter: wall ÷ predicted (decoded tokens that rode in a batch charged at "
        f"the prefill rate) | ≤ {TARGET_OVERHEAD} | {overhead:.2f} | "
        f"{_check(overhead <= TARGET_OVERHEAD)} |",
        f"| prompt tokens ÷ (document + template) | ≤ {TARGET_PROMPT_RATIO} | {ratio:.2f} | "
        f"{_check(ratio <= TARGET_PROMPT_RATIO)} |",
        "| the same, counting the fed quotes as prompt tokens too | "
        f"≤ {TARGET_PROMPT_RATIO} | {with_fed:.2f} | {_check(with_fed <= TARGET_PROMPT_RATIO)} |",
    ]
    lines += [
        "",
        "Two checks read the issue's words one way, with the other reading beside them. Its "
        "overhead formula knows prompt tokens and decoded tokens. slmscan also feeds tokens "
        "that are neither: the rest of each chosen option once the model's choice is clear (a "
        "row's quote, a keyword, the category's words) and answers put back after a retry. "
        "They are charged at the prefill rate. Most are the rows' quotes: sentences of the "
        "document evaluated a second time as the card's evidence, which the usual way is not "
        "asked for. Counted as prompt tokens, they break the prompt ratio.",
    ]
    lines += _time_split(done)
    lines += _bounds(done)
    lines += _usual_notes(done)
    if plot_name:
        lines += ["", f"![wall time per page, both ways]({plot_name})"]
    return "\n".join(lines) + "\n"


def _time_split(done: list[PageResult]) -> list[str]:
    """Where slmscan's card time goes, against what the prediction charges for it."""

    def med(values: list[float]) -> str:
        return f"{_median(values):.2f}"

    feed_pred = [
        (p.prompt_tokens + p.fed_tokens + p.decoded_batched) / p.prefill_rate for p in done
    ]
    decode_pred = [p.decode_steps / p.decode_rate for p in done]
    single_feeds = [p.single_evals - p.decode_steps for p in done]
    # Clamped: with no single-token feeds the difference is float noise, and may be -0.00.
    single_feed_s = [max(0.0, p.single_eval_seconds - p.decode_seconds) for p in done]
    # Decoding as slmscan does it (constraint checks and all) against raw argmax decoding.
    effective = [p.decode_steps / max(1e-9, p.wall - p.feed_seconds) / p.decode_rate for p in done]
    probe_tokens = sum(p.prefill_tokens for p in done)
    probe_seconds = sum(p.prefill_tokens / p.prefill_rate for p in done)
    return [
        "",
        "## Where slmscan's card time goes (medians per card)",
        "",
        "| part | predicted s | measured s |",
        "|---|---:|---:|",
        f"| feeding prompt + fed tokens (llama.cpp evals) | {med(feed_pred)} | "
        f"{med([p.feed_seconds for p in done])} |",
        f"| decoding (llama.cpp evals of decoded tokens) | {med(decode_pred)} | "
        f"{med([p.decode_seconds for p in done])} |",
        f"| outside llama.cpp (token choice, constraints, tokenising, Python) | 0 | "
        f"{med([p.python_seconds for p in done])} |",
        f"| **card wall time** | {med([p.predicted for p in done])} | "
        f"{med([p.wall for p in done])} |",
        "",
        f"- llama.cpp evaluations per card: {_median([p.evals for p in done]):.0f}, of which "
        f"{_median([float(p.single_evals) for p in done]):.0f} of a single token; single-token "
        f"feeds (not decodes): {_median([float(n) for n in single_feeds]):.0f} per card taking "
        f"{med(single_feed_s)} s — each costs about a decode step, while the prediction "
        "charges it 1/prefill rate.",
        "",
        "| llama.cpp evaluations by batch size (all cards) | calls | tokens | seconds | tok/s |",
        "|---|---:|---:|---:|---:|",
        *_bucket_rows(done),
        f"| document prefill probes (for comparison) | {len(done)} | {probe_tokens} | "
        f"{probe_seconds:.2f} | {probe_tokens / probe_seconds:.0f} |",
        "",
        f"- Decoding as the card does it (decoded tokens ÷ time not spent feeding) runs at "
        f"{_median(effective):.2f}× the raw decode rate.",
    ]


def _bounds(done: list[PageResult]) -> list[str]:
    """What limits the speed-up: the document's own prefill, and the card's work beyond it.

    A card has to read its document at least once; at the measured prefill rate that alone
    takes `document_tokens / prefill_rate`, so no card can be faster than the usual way by more
    than the usual way's time over that. It also has to decode its content: adding the card's
    own decode steps gives the tighter bound that holds while the content stays what it is.
    """
    document = [p.document_tokens / p.prefill_rate for p in done]
    template = [p.template_tokens / p.prefill_rate for p in done]
    fed = [(p.fed_tokens + p.decoded_batched) / p.prefill_rate for p in done]
    steps = [p.decode_steps / p.decode_rate for p in done]
    ceiling = [p.usual_wall / d for p, d in zip(done, document, strict=True)]
    # Decode steps at their measured cost inside the card, where each attends to the document
    # and to its section's instruction and rows so far, not at the probe's rate.
    bound = [p.usual_wall / (d + p.decode_seconds) for p, d in zip(done, document, strict=True)]
    # What a card at the target may spend beyond its document, against what it spends now.
    allowed = [p.usual_wall / TARGET_SPEEDUP - d for p, d in zip(done, document, strict=True)]
    spent = [p.wall - d for p, d in zip(done, document, strict=True)]
    return [
        "",
        "## What bounds the speed-up (medians per card)",
        "",
        "| slmscan's token work, at the page's measured rates | s |",
        "|---|---:|",
        f"| the document, read once | {_median(document):.2f} |",
        f"| the instructions (template tokens) | {_median(template):.2f} |",
        f"| scaffolding and quotes fed (with the decoded tokens riding along) | "
        f"{_median(fed):.2f} |",
        f"| decode steps (the card's content, one token at a time) | {_median(steps):.2f} |",
        "",
        f"- A card that did nothing but read its document once would be "
        f"{_median(ceiling):.1f}× faster than the usual way (usual time ÷ the document's "
        "prefill time, median of the pages).",
        "- A card that read its document once and decoded its content, with no instructions, "
        "scaffolding, quotes or Python, its decode steps costing what they cost in the card, "
        f"would be {_median(bound):.1f}× faster: the bound while a card's content stays what it "
        "is.",
        f"- At {TARGET_SPEEDUP:.0f}× a card could spend {_median(allowed):.2f} s beyond reading "
        f"its document; it spends {_median(spent):.2f} s.",
    ]


def _bucket_rows(done: list[PageResult]) -> list[str]:
    rows = []
    for label, _, _ in BATCH_BUCKETS:
        calls, tokens, seconds = (
            sum(p.eval_buckets.get(label, [0, 0, 0])[i] for p in done) for i in range(3)
        )
        rate = f"{tokens / seconds:.0f}" if seconds else ""
        rows.append(f"| {label} tokens | {calls:.0f} | {tokens:.0f} | {seconds:.2f} | {rate} |")
    return rows


def _usual_notes(done: list[PageResult]) -> list[str]:
    calls = [c for p in done for c in p.usual_calls]
    if not calls:
        return []
    unparsed = sum(not c.parsed for c in calls)
    at_limit = sum(c.finish_reason == "length" for c in calls)
    invalid = sum(p.usual_invalid_rows for p in done)
    missing: dict[str, int] = {}
    for p in done:
        for name in p.usual_missing:
            missing[name] = missing.get(name, 0) + 1
    gaps = ", ".join(f"{k} {v}" for k, v in sorted(missing.items(), key=lambda kv: -kv[1]))
    return [
        "",
        "## The usual way's output",
        "",
        f"- {len(calls)} calls: {unparsed} gave no parseable JSON object, {at_limit} ran to the "
        f"token limit; {invalid} table rows were refused by the card's schema (e.g. relevancy "
        "outside 1-5, which the JSON-schema grammar does not enforce).",
        f"- Empty sections, pages: {gaps or 'none'}.",
        f"- Tokens per card (median): prompt {_median([p.usual_prompt_tokens for p in done]):.0f}"
        f", decoded {_median([p.usual_decoded_tokens for p in done]):.0f}.",
    ]


def plot_results(run: BenchRun, path: Path) -> None:
    """Per-page wall time both ways (log scale) and the speed-up, as a PNG."""
    try:
        import matplotlib
    except ImportError as e:
        raise UsageError("the plot needs matplotlib", hint="pip install matplotlib") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = sorted(run.done, key=lambda p: p.document_tokens)
    if not done:
        return
    names = [Path(p.page).stem[:24] for p in done]
    x = range(len(done))
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 8), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    top.plot(x, [p.usual_wall for p in done], "s-", color="tab:red", label="usual way")
    top.plot(x, [p.wall for p in done], "o-", color="tab:blue", label="slmscan")
    top.plot(
        x,
        [p.predicted for p in done],
        ":",
        color="tab:blue",
        label="slmscan predicted from its token work",
    )
    top.set_yscale("log")
    top.set_ylabel("wall time per card (s, log)")
    top.set_title(f"{run.model}: one card per page, {run.threads} threads (pages by length)")
    top.grid(True, which="both", alpha=0.3)
    top.legend()
    bottom.bar(x, [p.speedup for p in done], color="tab:green")
    bottom.axhline(TARGET_SPEEDUP, color="black", linestyle="--", label=f"{TARGET_SPEEDUP:.0f}×")
    bottom.set_ylabel("speed-up (usual ÷ slmscan)")
    bottom.legend()
    bottom.set_xticks(list(x))
    bottom.set_xticklabels(
        [f"{n} ({p.document_tokens})" for n, p in zip(names, done, strict=True)],
        rotation=60,
        ha="right",
        fontsize=7,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
