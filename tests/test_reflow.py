"""Line breaks of layout become spaces: Markdown source, hard-wrapped text, PDF lines."""

from __future__ import annotations

import textwrap

from slmscan.reflow import markdown_text, unwrap
from slmscan.sentences import split_sentences

PARAGRAPH = (
    "The harbour board met on Monday and agreed to dredge the eastern channel before the "
    "autumn storms, so that the larger ferries can dock at low tide. Fishermen asked for the "
    "work to pause in the spawning season, and the board promised a survey of the seabed "
    "first. The cost will be shared with the regional government, which has already set "
    "money aside in its budget for next year."
)


def wrapped(text: str, width: int = 72) -> str:
    return textwrap.fill(text, width)


def test_a_hard_wrapped_paragraph_becomes_one_line() -> None:
    text = "Harbour news\n\n" + wrapped(PARAGRAPH) + "\n\n" + wrapped(PARAGRAPH, 60)
    assert len(text.split("\n")) > 10  # the fixture is wrapped, or the test proves nothing
    assert unwrap(text) == f"Harbour news\n\n{PARAGRAPH}\n\n{PARAGRAPH}"
    sentences = [s.text for s in split_sentences(unwrap(text))]
    assert (
        sentences[1] == "Fishermen asked for the work to pause in the spawning season, and "
        "the board promised a survey of the seabed first."
    )


def test_headings_list_items_and_paragraphs_keep_their_lines() -> None:
    lines = wrapped(PARAGRAPH).split("\n")
    assert len(lines[-1]) < 72 - 20  # the paragraph's last line ends short of the margin
    # As a PDF's text comes: no blank line between paragraphs, nor under a heading.
    text = "\n".join(
        ["Harbour news", *lines, *lines, "1.2. What the board decided", *lines[:3],
         "- a survey of the seabed", "- a pause in the spawning season"]
    )  # fmt: skip
    out = unwrap(text).split("\n")
    assert out[:3] == ["Harbour news", PARAGRAPH, PARAGRAPH]
    assert out[3] == "1.2. What the board decided"
    assert out[5:] == ["- a survey of the seabed", "- a pause in the spawning season"]


def test_a_word_broken_at_the_margin_is_joined_without_a_space() -> None:
    lines = wrapped(PARAGRAPH).split("\n")
    assert lines[0].endswith(" eastern channel")
    lines[0] = lines[0].removesuffix("nel") + "-"
    lines[1] = "nel " + lines[1]
    assert "eastern chan-nel before" in unwrap("\n".join(lines))


def test_text_that_is_not_wrapped_comes_back_as_is() -> None:
    one_per_line = "\n".join([PARAGRAPH, PARAGRAPH[:150], PARAGRAPH[:90], PARAGRAPH, "Ends."])
    assert unwrap(one_per_line) == one_per_line
    short = "Quarterly notes\n\nSales rose in the north.\nCosts fell in the south."
    assert unwrap(short) == short
    code = "\n".join([*wrapped(PARAGRAPH).split("\n")[:4], "", "    " + "x = 1; " * 10, "Done."])
    assert unwrap(code).endswith("\n" + "    " + "x = 1; " * 10 + "\nDone.")
    shopping = "\n".join(f"Item {i}: apples and pears from the market" for i in range(8))
    assert unwrap(shopping) == shopping  # lines of one length below any wrapping margin


def test_markdown_reads_as_rendered() -> None:
    source = textwrap.dedent(
        """\
        # Harbour news

        <img src="logo.png" alt="Harbour board logo"/>
        [![build](https://ci.example/badge.svg)](https://ci.example)

        The board met on *Monday* and agreed to
        dredge the [eastern channel](https://example.org/channel).
        Fishermen asked for a pause.

        - a survey of
          the seabed
        - a pause in spring

        | Item | Cost |
        |------|------|
        | Dredging | 40 M |

            dredge --channel east
        """
    )
    assert markdown_text(source) == (
        "Harbour news\n\n"
        "The board met on Monday and agreed to dredge the eastern channel. "
        "Fishermen asked for a pause.\n\n"
        "- a survey of the seabed\n- a pause in spring\n\n"
        "Item | Cost\nDredging | 40 M\n\n"
        "dredge --channel east"
    )
