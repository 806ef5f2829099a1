"""A benchmark's results as files: leaderboard.md, quality.md (per document), results.csv,
results.json, chart.png, side-by-side.html, and each model's cards under cards/<model>/.

Everything taken from a document or a model's output is escaped before it reaches HTML or
Markdown: a page or a card is data, never markup.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .bench import BenchResult, ModelResult
from .card import Card
from .outputs import confined, slugify, write_atomic
from .quality import CardQuality
from .render import clean_line, render_json

QUALITY_COLUMNS: list[tuple[str, str]] = [
    ("schema_complete", "complete"),
    ("keyword_grounding", "keywords in text"),
    ("evidence_verified", "evidence verified"),
    ("entity_grounding", "summary names found"),
    ("duplicate_rows", "duplicate rows"),
    ("echo_rows", "echoing rows"),
    ("example_rows", "example copies"),
    ("number_rows", "invented numbers"),
    ("technology_naming", "technologies named"),
    ("identifiability", "identifiable"),
]

DEFINITIONS = """\
- **complete**: share of cards with every section non-empty.
- **keywords in text**: share of keywords that occur in their document (whole words, any case).
- **evidence verified**: share of all table rows generated (shown or not) whose quote is what
  the document holds at the quote's offsets (exactly, or after normalising whitespace, quotes,
  dashes and case).
- **summary names found**: share of the names (capitalised words) and numbers in summaries that
  occur in their document.
- **duplicate rows**: share of table rows that repeat an earlier row of the same table (same
  name, or 70% of the same words). Lower is better.
- **echoing rows**: share of table rows in which one cell has half or more of the words of
  another cell of the same row ("The court ruled" / "The court ruled that the court ruled").
  Lower is better.
- **example copies**: share of table rows that use a word (three letters or more, not a stop
  word) of their section's prompt example that their document never uses: the example's topic
  leaking into a card about something else. Lower is better.
- **invented numbers**: share of table rows with a number in a cell (the evidence aside) that
  their document never writes as a whole number. Lower is better.
- **technologies named**: share of technology rows whose name's words (three letters or more,
  not stop words) all occur in their document, as written or as singular or plural: a
  technology the page never names is invented.
- **identifiable**: share of cards whose summary alone makes BM25 over all the folder's
  documents rank the card's own document first.
- **quality index**: mean of the ten, with duplicate rows, echoing rows, example copies and
  invented numbers counted as 1 − rate.
- **s/card**: wall seconds per card, median (quartiles), every pass.
- **load s**: seconds until the model is ready (file verified and loaded).
- **prefill / decode tok/s**: from the engine's counters around each card. Prefill is every
  token evaluated in batches (the document and instructions, and also the labels and quotes
  fed between fields, mostly a few tokens at a time) over the seconds spent evaluating them, so
  it is well below llama.cpp's bulk prefill rate; decode is tokens the model chose over the
  seconds spent evaluating them one at a time (choosing among candidates is in s/card only).
- **peak MB**: the worker process's peak resident memory (Python and slmscan included).
- **agreement**: with `--repeat`, share of documents whose cards were identical in every pass.
- **split**: documents longer than the context, analysed in parts and merged.
- **failures**: card runs that produced no card.
"""


def pct(value: float | None) -> str:
    """A rate as a percentage with one decimal, or a dash."""
    return "—" if value is None else f"{100 * value:.1f}%"


def num(value: float | None, digits: int = 1) -> str:
    """A number with `digits` decimals (more below 1, so small times do not read 0), or a dash."""
    if value is None:
        return "—"
    return f"{value:.{max(digits, 3)}f}" if abs(value) < 1 else f"{value:.{digits}f}"


def model_summary(result: ModelResult) -> dict[str, Any]:
    """One model's figures as flat values (the CSV row, and the head of its JSON entry)."""
    quality = result.quality.as_dict() if result.quality else {}
    seconds = result.seconds_summary()
    return {
        "model": result.model,
        "status": "failed" if result.failed else "ok",
        "reason": result.reason or "",
        "cards": len(result.cards),
        "card_runs": len(result.runs),
        "failures": result.failures,
        "split": result.splits,
        "quality_index": quality.get("index"),
        **{name: quality.get(name) for name, _ in QUALITY_COLUMNS},
        **{f"seconds_{k}": v for k, v in seconds.items()},
        "load_seconds": result.load_seconds,
        "prefill_tps": result.prefill_tps(),
        "decode_tps": result.decode_tps(),
        "peak_rss_mb": result.peak_rss_mb,
        "base_rss_mb": result.base_rss_mb,
        "agreement": result.agreement(),
        "crashes": len(result.crashes),
    }


def _ranked(result: BenchResult) -> list[ModelResult]:
    """Models best first: working models by quality index, failed ones last."""

    def key(m: ModelResult) -> tuple[bool, float]:
        index = m.quality.index() if m.quality else None
        return (m.failed, -(index or 0.0))

    return sorted(result.models, key=key)


def _md(text: object) -> str:
    """A Markdown table cell: one line, pipes escaped, HTML made inert."""
    return html.escape(clean_line(str(text)), quote=False).replace("|", "\\|")


def render_leaderboard(result: BenchResult) -> str:
    """The Markdown leaderboard: quality, speed and memory per model, failures with reasons."""
    opts = result.options
    docs = result.documents
    bad_docs = [d for d in docs if not d.ok]
    machine = result.machine
    out = [
        "# slmscan bench",
        "",
        f"{len(docs)} documents from `{_md(opts.corpus)}`, {opts.repeat} pass(es), seed "
        f"{opts.seed}, sections: {', '.join(opts.sections)}. Run {result.started} "
        f"({result.seconds:.0f} s) on {machine['cpu_count']} CPU(s), {_md(machine['platform'])}, "
        f"llama-cpp-python {machine['llama_cpp_python']}, slmscan {machine['slmscan']}.",
        "",
        "## Quality",
        "",
        "| model | cards | "
        + " | ".join(label for _, label in QUALITY_COLUMNS)
        + " | quality index |",
        "|:--|--:|" + "--:|" * len(QUALITY_COLUMNS) + "--:|",
    ]
    ranked = _ranked(result)
    usable = len(docs) - len(bad_docs)
    for m in ranked:
        s = model_summary(m)
        if m.failed:
            out.append(f"| {_md(m.model)} | FAILED |" + " — |" * (len(QUALITY_COLUMNS) + 1))
            continue
        cells = [pct(s[name]) for name, _ in QUALITY_COLUMNS]
        out.append(
            f"| {_md(m.model)} | {s['cards']}/{usable} | "
            + " | ".join(cells)
            + f" | {pct(s['quality_index'])} |"
        )
    out += [
        "",
        "## Speed and memory",
        "",
        "| model | s/card median (q1–q3) | load s | prefill tok/s | decode tok/s | peak MB "
        "| agreement | split | failures |",
        "|:--|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for m in ranked:
        s = model_summary(m)
        spread = (
            f"{num(s['seconds_median'])} ({num(s['seconds_q1'])}–{num(s['seconds_q3'])})"
            if s["seconds_median"] is not None
            else "—"
        )
        out.append(
            f"| {_md(m.model)} | {spread} | {num(s['load_seconds'], 2)} | "
            f"{num(s['prefill_tps'], 0)} | {num(s['decode_tps'], 0)} | {num(s['peak_rss_mb'], 0)} "
            f"| {pct(s['agreement'])} | {s['split']} | {s['failures']}/{s['card_runs']} |"
        )
    failed = [m for m in ranked if m.failed]
    problems = [m for m in ranked if not m.failed and (m.failures or m.crashes)]
    if failed or problems or bad_docs:
        out += ["", "## Failures", ""]
        out += [f"- **{_md(m.model)}** failed: {_md(m.reason)}" for m in failed]
        for m in problems:
            errors = sorted({r.error for r in m.runs if r.error})
            out.append(f"- {_md(m.model)}: {m.failures} card(s) failed: " + "; ".join(
                _md(e) for e in errors[:3]
            ))  # fmt: skip
        out += [f"- document {_md(d.key)} not extracted: {_md(d.error)}" for d in bad_docs]
    out += ["", "## How to read it", "", DEFINITIONS]
    return "\n".join(out).rstrip() + "\n"


def render_quality(result: BenchResult) -> str:
    """Markdown: each model's quality figures per document, and what pulled them down."""
    out = ["# Quality figures per document", "",
           "Computed from the cards and the documents alone, no model; see leaderboard.md for "
           "the definitions. Cells are found/total.", ""]  # fmt: skip
    for m in _ranked(result):
        out += [f"## {_md(m.model)}", ""]
        if m.failed:
            out += [f"Failed: {_md(m.reason)}", ""]
            continue
        q = m.quality
        if q is not None:
            figures = ", ".join(
                f"{label} {pct(getattr(q, name))}" for name, label in QUALITY_COLUMNS
            )
            out += [f"{q.cards} cards: {figures}; quality index {pct(q.index())}.", ""]
        out += [
            "| document | complete | keywords in text | evidence verified "
            "| summary names found | duplicate rows | echoing rows | example copies "
            "| invented numbers | technologies named | identifiable |",
            "|:--|:-:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|",
        ]
        notes = []
        for doc in result.documents:
            f = m.card_quality.get(doc.key)
            if f is None:
                out.append(f"| {_md(doc.key)} | no card | | | | | | | | | |")
                continue
            out.append(
                f"| {_md(doc.key)} | {'yes' if f.complete else 'no'} "
                f"| {f.keywords_grounded}/{f.keywords} | {f.rows_verified}/{f.rows} "
                f"| {f.claims_grounded}/{f.claims} | {f.duplicate_rows} "
                f"| {f.echo_rows} | {f.example_rows} | {f.number_rows} "
                f"| {f.technologies_named}/{f.technologies} "
                f"| {'yes' if f.identifiable else 'no'} |"
            )
            if f.missing:
                notes.append(f"- {_md(doc.key)}: empty sections: {', '.join(f.missing)}")
            if f.unsupported_claims:
                claims = ", ".join(_md(c) for c in f.unsupported_claims)
                notes.append(f"- {_md(doc.key)}: summary names not in the document: {claims}")
        out += ["", *notes, ""] if notes else [""]
    return "\n".join(out).rstrip() + "\n"


def render_cards_table(cards: dict[str, Card]) -> str:
    """Cards of one document side by side as a Markdown table: one row per section."""

    def rows(items: Sequence[Any]) -> str:
        marked = [
            f"{'' if r.grounded else '(UNGROUNDED) '}**{r.name}** ({r.relevancy}): {r.description}"
            for r in items
        ]
        return "<br>".join(_md(m) for m in marked) or "—"

    sections: list[tuple[str, Callable[[Card], str]]] = [
        ("title", lambda c: _md(c.title)),
        ("keywords", lambda c: _md(", ".join(c.keywords)) or "—"),
        ("themes", lambda c: _md(", ".join(c.themes)) or "—"),
        ("category / type", lambda c: _md(f"{c.category or '—'} / {c.type or '—'}")),
        ("summary", lambda c: _md(c.summary or "—")),
        ("summary flags", lambda c: _md(", ".join(c.summary_flags)) or "—"),
        ("signals", lambda c: rows(c.signals)),
        ("behaviors", lambda c: rows(c.behaviors)),
        ("technologies", lambda c: rows(c.technologies)),
        ("issues", lambda c: rows(c.issues)),
        ("seconds", lambda c: f"{c.provenance.seconds:.1f}"),
    ]
    names = list(cards)
    out = ["| section | " + " | ".join(_md(n) for n in names) + " |",
           "|:--|" + ":--|" * len(names)]  # fmt: skip
    for label, get in sections:
        out.append(f"| {label} | " + " | ".join(get(cards[n]) for n in names) + " |")
    return "\n".join(out) + "\n"


def render_csv(result: BenchResult) -> str:
    """One CSV row per model, every figure (rates as 0..1)."""
    rows = [model_summary(m) for m in result.models]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["model"])
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: "" if v is None else round(v, 4) if isinstance(v, float) else v
             for k, v in row.items()}
        )  # fmt: skip
    return buffer.getvalue()


def render_results_json(result: BenchResult) -> str:
    """Every figure: the run, each document, each model, each card's counts (not the cards)."""
    opts = result.options
    data = {
        "started": result.started,
        "seconds": result.seconds,
        "machine": result.machine,
        "options": {
            "models": list(opts.models),
            "corpus": str(opts.corpus),
            "repeat": opts.repeat,
            "sections": list(opts.sections),
            "seed": opts.seed,
            "threads": opts.threads,
        },
        "documents": [
            {"key": d.key, "words": len(d.text.split()), "error": d.error} for d in result.documents
        ],
        "models": [
            {
                **model_summary(m),
                "crash_reasons": m.crashes,
                "runs": [
                    {
                        "key": r.key,
                        "repeat": r.repeat,
                        "seconds": r.seconds,
                        "error": r.error,
                        "parts": r.card.provenance.parts if r.card else None,
                        "prefill_tokens": r.prefill_tokens,
                        "decode_tokens": r.decode_tokens,
                    }
                    for r in m.runs
                ],
                "card_quality": {k: q.as_dict() for k, q in m.card_quality.items()},
            }
            for m in result.models
        ],
    }
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def write_chart(result: BenchResult, path: Path) -> None:
    """A PNG: quality index against median seconds per card, one labelled point per model."""
    import matplotlib

    matplotlib.use("Agg")  # no display; set before pyplot is imported
    import matplotlib.pyplot as plt

    points: list[tuple[str, float, float, float, float]] = []  # name, median, q1, q3, index
    for m in result.models:
        s, index = m.seconds_summary(), m.quality.index() if m.quality else None
        if not m.failed and index is not None and None not in (s["median"], s["q1"], s["q3"]):
            points.append((m.model, s["median"] or 0.0, s["q1"] or 0.0, s["q3"] or 0.0, index))
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for name, x, q1, q3, index in points:
        y = 100 * index
        # Horizontal bars: the middle half of the cards' times.
        ax.errorbar(x, y, xerr=[[x - q1], [q3 - x]], fmt="o", capsize=4, ms=8)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(8, 6), fontsize=9)
    xs = [p[2] for p in points] + [p[3] for p in points]
    if xs and min(xs) > 0 and max(xs) / min(xs) > 20:
        ax.set_xscale("log")  # a fake or tiny model next to a big one: ratios matter
    elif xs:
        ax.set_xlim(0, max(xs) * 1.25)  # from zero, so distances read as real time
    ax.set_xlabel("seconds per card (median; bars: middle half of cards)")
    ax.set_ylabel("quality index (%)")
    low = min([100 * p[4] for p in points], default=0)
    ax.set_ylim(max(0, low - 10), 101)
    ax.set_title(f"slmscan bench: {len(result.documents)} documents — better is up and left")
    ax.grid(True, alpha=0.3)
    failed = [m.model for m in result.models if m.failed]
    if failed:
        fig.text(0.01, 0.01, "failed: " + ", ".join(failed), fontsize=8, color="firebrick")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)


# --- the side-by-side page --------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h2{border-top:2px solid #ccc;padding-top:.6em;margin-top:2em}
.cards{display:grid;grid-template-columns:repeat(var(--n),minmax(22em,1fr));gap:1em;
overflow-x:auto;align-items:start}
.card{border:1px solid #bbb;border-radius:6px;padding:.6em .9em;background:#fafafa;min-width:0}
.card h3{margin:.2em 0;font-size:1.05em;color:#444}.card h4{margin:.8em 0 .2em}
.failed{background:#fdecea;color:#8a1c1c}
table{border-collapse:collapse;font-size:12px;width:100%}
td,th{border:1px solid #ddd;padding:2px 4px;vertical-align:top;text-align:left}
.ungrounded{background:#fff3cd}.flag{color:#8a1c1c}.figures{font-size:12px;color:#555}
blockquote{margin:.2em 0;color:#555;font-style:italic}
"""


def _e(text: object) -> str:
    return html.escape(clean_line(str(text)))


def _card_html(card: Card, figures: CardQuality | None) -> str:
    """One card as HTML, every row shown; rows without verified evidence are marked."""
    parts = [f"<h4 class='title'>{_e(card.title)}</h4>"]
    facts = [card.source.title, card.source.site, card.source.date]
    parts.append(f"<div class='figures'>{_e(' · '.join(f for f in facts if f))}</div>")
    if figures:
        parts.append(
            "<div class='figures'>"
            + _e(
                f"complete: {'yes' if figures.complete else 'no: ' + ', '.join(figures.missing)}"
                f" · keywords in text {figures.keywords_grounded}/{figures.keywords}"
                f" · evidence verified {figures.rows_verified}/{figures.rows}"
                f" · summary names found {figures.claims_grounded}/{figures.claims}"
                f" · duplicate rows {figures.duplicate_rows}"
                f" · echoing rows {figures.echo_rows}"
                f" · example copies {figures.example_rows}"
                f" · invented numbers {figures.number_rows}"
                f" · technologies named {figures.technologies_named}/{figures.technologies}"
                f" · identifiable: {'yes' if figures.identifiable else 'no'}"
            )
            + "</div>"
        )
    for label, items in (("Keywords", card.keywords), ("Themes", card.themes)):
        if items:
            parts.append(f"<h4>{label}</h4><ul>{''.join(f'<li>{_e(i)}</li>' for i in items)}</ul>")
    parts.append(
        f"<h4>Other</h4><ul><li>Category: {_e(card.category or '—')}</li>"
        f"<li>Type: {_e(card.type or '—')}</li></ul>"
    )
    if card.summary:
        parts.append(f"<h4>Summary</h4><p>{_e(card.summary)}</p>")
        if card.summary_flags:
            flags = ", ".join(card.summary_flags)
            parts.append(f"<p class='flag'>Not found in the document: {_e(flags)}</p>")
    tables: list[tuple[str, Sequence[Any], list[tuple[str, Callable[[Any], object]]]]] = [
        ("Signals", card.signals, [("name", lambda r: r.name),
                                   ("description", lambda r: r.description),
                                   ("change", lambda r: r.change),
                                   ("10-year", lambda r: r.ten_year),
                                   ("driving-force", lambda r: r.driving_force)]),
        ("Behaviors", card.behaviors, [("name", lambda r: r.name),
                                       ("description", lambda r: r.description)]),
        ("Technologies", card.technologies, [("name", lambda r: r.name),
                                             ("description", lambda r: r.description)]),
        ("Issues", card.issues, [("name", lambda r: r.name),
                                 ("description", lambda r: r.description)]),
    ]  # fmt: skip
    for title, rows, columns in tables:
        if not rows:
            continue
        head = "".join(f"<th>{name}</th>" for name, _ in columns)
        body = []
        for row in rows:
            cls = "" if row.grounded else " class='ungrounded'"
            quote = row.evidence.quote if row.evidence else ""
            mark = "" if row.grounded else "UNGROUNDED "
            cells = "".join(f"<td>{_e(get(row))}</td>" for _, get in columns)
            body.append(
                f"<tr{cls}>{cells}<td>{row.relevancy}</td>"
                f"<td><blockquote>{mark}{_e(quote)}</blockquote></td></tr>"
            )
        parts.append(
            f"<h4>{title}</h4><table><tr>{head}<th>rel.</th><th>evidence</th></tr>"
            + "".join(body)
            + "</table>"
        )
    return "".join(parts)


def render_side_by_side(result: BenchResult) -> str:
    """A self-contained HTML page: for each document, each model's card in its own column."""
    models = result.models
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        # Nothing on the page may load or run anything: it shows untrusted text.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">",
        "<title>slmscan bench: cards side by side</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>slmscan bench: cards side by side</h1>",
        f"<p>Models: {', '.join(_e(m.model) for m in models)}. "
        f"Corpus: {_e(result.options.corpus)}. Rows whose evidence was not found are shaded "
        "and marked UNGROUNDED.</p><ol>",
    ]
    out += [f"<li><a href='#doc-{i}'>{_e(d.key)}</a></li>" for i, d in enumerate(result.documents)]
    out.append("</ol>")
    for i, doc in enumerate(result.documents):
        title = doc.article.title if doc.article and doc.article.title else ""
        out.append(
            f"<section id='doc-{i}' data-document='{html.escape(doc.key, quote=True)}'>"
            f"<h2>{_e(doc.key)}</h2><p>{_e(title)} ({len(doc.text.split())} words)</p>"
            f"<div class='cards' style='--n:{max(1, len(models))}'>"
        )
        for m in models:
            attr = html.escape(m.model, quote=True)
            card = m.cards.get(doc.key)
            if card is not None:
                body = _card_html(card, m.card_quality.get(doc.key))
                out.append(f"<article class='card' data-model='{attr}'><h3>{_e(m.model)}</h3>")
            else:
                why = doc.error or next(
                    (r.error for r in m.runs if r.key == doc.key and r.error), m.reason
                )
                body = f"<p>No card: {_e(why or 'not run')}</p>"
                out.append(
                    f"<article class='card failed' data-model='{attr}'><h3>{_e(m.model)}</h3>"
                )
            out.append(body + "</article>")
        out.append("</div></section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(result: BenchResult, out: Path, *, cards: bool = True) -> list[Path]:
    """Write every output file into `out` (and the cards, unless `cards` is False)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (
        ("leaderboard.md", render_leaderboard(result)),
        ("results.csv", render_csv(result)),
        ("results.json", render_results_json(result)),
        ("quality.md", render_quality(result)),
        ("side-by-side.html", render_side_by_side(result)),
    ):
        write_atomic(confined(out, name), text)
        written.append(out / name)
    write_chart(result, out / "chart.png")
    written.append(out / "chart.png")
    if cards:
        for m in result.models:
            folder = confined(out / "cards", slugify(m.model))
            for key, card in m.cards.items():
                target = confined(folder, slugify(key) + ".json")
                write_atomic(target, render_json(card))
    return written
