"""Fast checks of the pieces that need no model."""

from pathlib import Path

import pytest

from slmscan.analyse import summary_problem
from slmscan.constraints import FreeText, Numbers, Vocabulary, stems
from slmscan.errors import SourceError
from slmscan.grounding import flag_summary
from slmscan.outputs import confined, slugify, write_atomic
from slmscan.sentences import split_sentences


def test_sentences_carry_exact_offsets() -> None:
    text = "The first sentence is here. A second one follows it!\n\nShort.\nA line without a stop"
    sentences = split_sentences(text)
    assert [s.text for s in sentences] == [
        "The first sentence is here.",
        "A second one follows it!",
        "A line without a stop",
    ]
    assert all(text[s.start : s.end] == s.text for s in sentences)


def test_long_sentences_are_cut_at_a_word_boundary() -> None:
    text = " ".join(f"word{i}" for i in range(100)) + "."
    (sentence,) = split_sentences(text)
    assert len(sentence.text.split()) == 40 and text.startswith(sentence.text)


def test_free_text_refuses_table_and_markup_characters() -> None:
    text = FreeText(max_chars=20, sentences=1)
    assert text.allows(b"", b" Hello")
    assert not text.allows(b" Hello", b" |")
    assert not text.allows(b"", b"\x1b[31m")
    assert not text.allows(b" Hello there you", b" people")  # over 20 characters
    assert text.finished(b" One sentence.")
    assert not text.finished(b" One sentence")


def test_free_text_ends_before_a_word_beyond_its_limit() -> None:
    theme = FreeText(max_words=3)
    assert not theme.finished(b"renewable energy policy")
    assert theme.may_stop(b"renewable energy policy")
    assert theme.finished(b"renewable energy policy reform")  # ... and may not end there
    assert not theme.may_stop(b"renewable energy policy reform")
    assert not FreeText().finished(b"renewable energy policy reform")


def test_free_text_refuses_to_start_as_an_earlier_cell_from_the_first_piece() -> None:
    cell = FreeText(avoid=(b"the appellate court ruled",))
    assert cell.allows(b"", b"The")
    assert not cell.allows(b"The", b" app")  # would have to become "appellate" or a non-word
    assert cell.allows(b"The", b" court")
    assert cell.allows(b"The court", b" ruled")  # a different start may go on as it likes
    assert FreeText(avoid=(b"the appellate",)).allows(b"The appellate court", b" ruled")


def test_free_text_writes_only_the_documents_numbers() -> None:
    numbers = Numbers.of("In 2019 emissions fell 2.1%, and 1,500 plants closed.")
    cell = FreeText(numbers=numbers)
    assert cell.allows(b"Emissions fell", b" 2")  # may become "2.1" or "2019"
    assert cell.allows(b"Emissions fell 2", b".")
    assert cell.allows(b"Emissions fell 2.", b"1")
    assert cell.allows(b"Emissions fell 2.1", b"%")
    assert not cell.allows(b"Emissions fell", b" 3")
    assert not cell.allows(b"Emissions fell 2.", b"2")  # "2.2" is not the document's
    assert not cell.allows(b"Emissions fell 2", b"%")  # "2" alone is not one of its numbers
    assert cell.allows(b"Since 201", b"9")
    assert not cell.allows(b"Since 2019", b"0")
    assert cell.allows(b"About 1,", b"500")
    assert cell.allows(b"In 2019", b".")  # the end of a sentence
    assert not cell.may_stop(b"Since 201")  # a number cut short
    assert cell.may_stop(b"Plants closed in 2019.")
    assert FreeText().allows(b"Emissions fell", b" 37")  # no document given: any number


def test_free_text_writes_only_the_documents_words_when_given_them() -> None:
    vocabulary = Vocabulary.of("Training AI models by GPUs burns electricity and batteries.")
    cell = FreeText(vocabulary=vocabulary)
    assert cell.allows(b"", b"Train") and cell.allows(b"Train", b"ing")
    assert cell.allows(b"Training", b" models") and cell.allows(b"Training", b" model")
    assert cell.may_stop(b"Battery") and cell.may_stop(b"GPU") and cell.may_stop(b"AI model")
    assert not cell.allows(b"Training", b" Quant")  # no word of the page starts "quant"
    assert not cell.allows(b"", b"Lion")
    assert not cell.may_stop(b"Trained models")  # the page writes "training", not "trained"
    assert cell.allows(b"Training", b" by") and not cell.may_stop(b"Training ab")
    assert cell.allows(b"GPU", b" 4") and cell.may_stop(b"GPU's")  # numbers, single letters
    assert cell.allows(b"AI", b" electr")  # "electr" begins the page's "electricity" ...
    assert not cell.may_stop(b"AI electr")  # ... but is not one of its words
    assert FreeText().allows(b"Trained", b" Quantum")  # no document given: any word


def test_a_number_glued_to_letters_is_one_number() -> None:
    cell = FreeText(numbers=Numbers.of("Printers print 3D parts, as in the 1800s."))
    assert cell.allows(b"", b"3") and cell.allows(b"3", b"D")
    assert cell.allows(b"3D", b" parts")
    assert not cell.allows(b"3", b" Technologies")  # "3" alone is not the page's
    assert cell.allows(b"The 1800s", b" saw it")
    assert not cell.allows(b"The 1800", b" years")


def test_a_decimal_point_does_not_end_the_last_sentence() -> None:
    numbers = Numbers.of("Warming reached 1.5 degrees. It was 1 of 2 records.")
    cell = FreeText(sentences=1, numbers=numbers)
    assert not cell.finished(b"Warming reached 1.")  # may yet be "1.5"
    assert cell.allows(b"Warming reached 1.", b"5")
    assert not cell.allows(b"Warming reached 1.", b" It")  # the cell would end on "1."
    assert cell.finished(b"Warming reached 1.5.")
    assert cell.finished(b"It was 2.")  # no number of the document goes on from "2."
    assert FreeText(sentences=1).finished(b"Warming reached 1.")


def test_free_text_refuses_the_prompts_format() -> None:
    cell = FreeText()
    for text, piece in [
        (b"3", b")."),
        (b"2", b" ("),
        (b"Decision", b" (1-5)"),
        (b"", b"Evidence"),
        (b"", b" (It"),  # a retry's note: "(Signal again: ...)"
        (b" ", b","),
        (b"", " “The".encode()),
        (b"The", " “best”".encode()),
    ]:
        assert not cell.allows(text, piece), text + piece
    assert cell.allows(b"2", b" people")
    assert cell.allows(b"", b" ") and cell.allows(b" ", "Éclairs".encode())
    assert cell.allows(b"Prices", b" (in euros)")


def test_summary_flags_names_and_numbers_absent_from_the_document() -> None:
    document = "The city council met on Monday. About 300 people came."
    summary = "The council met with Acme Corporation. About 300 people and 45 dogs came."
    assert flag_summary(summary, document) == ["Acme Corporation", "45"]


def test_slugs_and_confinement(tmp_path: Path) -> None:
    assert slugify("../../etc/passwd") == "etc-passwd"
    assert slugify("Café: a “title” ✓") == "cafe-a-title"
    assert slugify("x" * 400) == "x" * 60
    assert slugify("¿¿¿") == "document"
    with pytest.raises(SourceError):
        confined(tmp_path, "../escape.md")
    assert confined(tmp_path, "ok.md") == (tmp_path / "ok.md").resolve()


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "out" / "card.md"
    write_atomic(target, "hello\n")
    write_atomic(target, "again\n")
    assert target.read_text() == "again\n"
    assert [p.name for p in target.parent.iterdir()] == ["card.md"]


def test_placeholders_are_not_answers() -> None:
    from slmscan.constraints import FreeText, is_placeholder

    for text in ("N/A", "n/a.", "Unknown", "  none ", "...", "-", "Not mentioned", "TBD"):
        assert is_placeholder(text), text
        assert not FreeText().may_stop(text.encode())
    for text in ("Nothing to lose", "Unknown risks of heat pumps", "NA battery chemistry"):
        assert not is_placeholder(text), text
    assert FreeText().may_stop(b"Unknown risks")


def test_a_cell_cannot_stop_on_a_dangling_word() -> None:
    from slmscan.constraints import FreeText

    for text in (
        b"The library is a",
        b"The",
        b"Councils should",
        b"Repairs of the",
        b"Share it with our",
    ):
        assert not FreeText().may_stop(text), text
    assert FreeText().may_stop(b"The library lends tools")
    assert FreeText().may_stop(b"Tools a library lends.")


def test_a_field_may_need_a_few_words() -> None:
    from slmscan.constraints import FreeText

    for text in (b"Many", b"15% seconds"):
        assert not FreeText(min_words=3).may_stop(text) and FreeText().may_stop(text), text
    assert FreeText(min_words=3).may_stop(b"More people repair")


def test_a_field_needs_letters_not_the_bytes_of_a_dash() -> None:
    from slmscan.constraints import FreeText

    assert not FreeText().may_stop("2015 – 2030".encode())  # Gemma wrote such themes
    assert not FreeText().may_stop("x ₑₑ".encode())  # one letter, two subscripts
    assert FreeText().may_stop("Café".encode())


def test_a_field_starts_with_a_letter_or_a_digit() -> None:
    assert FreeText().allows(b"", " Émigrés".encode()) and FreeText().allows(b"", b" 2019")
    assert FreeText().allows(b"", " 漢字".encode())
    for mark in (" ² The document", " ₑ", " ʰ"):  # a footnote mark, a subscript, a modifier
        assert not FreeText().allows(b"", mark.encode()), mark
    seven = " ₇".encode()  # a character split over two tokens, its first decoding to nothing
    assert FreeText().allows(b"", seven[:2]) and not FreeText().allows(seven[:2], seven[2:])
    e_acute = " É".encode()
    assert FreeText().allows(e_acute[:2], e_acute[2:])
    assert not FreeText().allows(b"", b" (see")


def test_candidate_phrases_are_spans_of_the_text() -> None:
    from slmscan.keyphrases import candidate_phrases

    text = (
        "Warming reached 1.43°C in the north. Warming of 1.43°C breaks the record. "
        "Heat pumps cut bills. Heat pumps need power. Heat-pumps, again."
    )
    phrases = candidate_phrases(text)
    lowered = [p.lower() for p in phrases]
    assert "heat pumps" in lowered and "1.43 c" not in lowered
    assert all(p.lower() in " ".join(text.lower().split()) for p in phrases)


def test_a_summary_that_is_not_about_the_document_is_recognised() -> None:
    document = set(
        stems(
            b"Heat pumps move warmth from the outside air into homes. Installers "
            b"report long waiting lists; electricity bills fell by 30 percent."
        )
    )
    prompt = frozenset(stems(b"Summarise the document above: the main points."))
    good = "Heat pumps move warmth into homes, and installers report long waiting lists."
    assert summary_problem(good, document, prompt) is None
    assert summary_problem("100 words to 150 words", document, prompt) == "is too short"
    assert (
        summary_problem(
            "Heat pumps: 2020, 22, 24, 26, 30, 32, 34, 36, 40, 42, 44.", document, prompt
        )
        == "is mostly numbers"
    )
    echo = "The document above is a summary of the main points of the document."
    assert summary_problem(echo, document, prompt) == "does not use the document's words"
    made_up = "Python is a very powerful language, but it is not easy to learn at all."
    assert summary_problem(made_up, document, prompt) == "does not use the document's words"


def test_an_answer_does_not_start_with_a_word_that_only_continues_a_phrase() -> None:
    cell = FreeText()
    for text, piece in [(b"", b" of"), (b"", b" And"), (b" O", b"f device"), (b"", b" is")]:
        assert not cell.allows(text, piece), text + piece
    assert cell.allows(b"", b" Office") and cell.allows(b"", b" Isotopes")
    assert cell.allows(b"Rise", b" of")  # only the first word
    name = FreeText(no_start=frozenset({b"part"}), refused=b",:")
    assert not name.allows(b"", b" Part") and not name.allows(b"Pa", b"rt-time")
    assert name.allows(b"", b" Parts") and name.allows(b"Spare", b" part")
    assert not name.allows(b"Shockingly", b",") and not name.allows(b"Part-of-speech", b":")


def test_a_number_with_letters_glued_on_is_checked_letter_by_letter() -> None:
    cell = FreeText(numbers=Numbers.of("Drives hold 80TB."))
    assert cell.allows(b"80T", b"B") and cell.allows(b"80TB", b" drives")
    assert not cell.allows(b"80TB", b"s")  # "80TBs" is not the page's


def test_a_cell_cannot_stop_on_a_dangling_word_its_cleaning_would_bare() -> None:
    assert not FreeText().may_stop(b"Tools for -")
    assert not FreeText().may_stop(b"Tools for,")
    assert FreeText().may_stop(b"That is what it is.")
