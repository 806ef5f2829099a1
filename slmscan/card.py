"""The card: what slmscan makes of one document (pydantic models, versioned).

The JSON Schema printed by `slmscan schema` is generated from these classes.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Final = "1"

Category = Literal[
    "technology", "science", "health", "economy", "business", "politics", "law", "society",
    "education", "environment", "culture", "security", "sports", "other",
]  # fmt: skip
DocumentType = Literal[
    "news article", "blog post", "opinion", "research paper", "report", "documentation",
    "press release", "interview", "tutorial", "review", "question and answer",
    "encyclopedia entry", "other",
]  # fmt: skip
CATEGORIES: tuple[Category, ...] = get_args(Category)
DOCUMENT_TYPES: tuple[DocumentType, ...] = get_args(DocumentType)
Relevancy = Field(ge=1, le=5, description="1 marginal … 5 central to the document")
NonEmpty = Field(min_length=1)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Evidence(_Strict):
    """A quote from the extracted text that a row rests on, and where it was found."""

    quote: str = Field(min_length=1)
    start: int = Field(ge=0, description="character offset of the quote in the extracted text")
    end: int = Field(ge=0)
    match: Literal["exact", "normalised", "fuzzy"]


class _Row(_Strict):
    relevancy: int = Relevancy
    evidence: Evidence | None = None
    grounded: bool = Field(description="the evidence was found in the document")


class Signal(_Row):
    """A signal of change."""

    name: str = NonEmpty
    description: str = NonEmpty
    change: str = Field(min_length=1, description="from what to what")
    ten_year: str = Field(min_length=1, description="what may differ in ten years")
    driving_force: str = NonEmpty


class Behavior(_Row):
    """A behaviour of people or organisations the document describes."""

    name: str = NonEmpty
    description: str = NonEmpty


class Technology(_Row):
    """A technology the document discusses."""

    name: str = NonEmpty
    description: str = NonEmpty


class Issue(_Row):
    """An issue the document raises."""

    name: str = NonEmpty
    description: str = NonEmpty


class Source(_Strict):
    """Where the document came from."""

    kind: Literal["url", "file", "stdin", "text"]
    location: str = Field(description="URL, file path, or '-' for stdin")
    url: str | None = None
    title: str | None = None
    site: str | None = None
    author: str | None = None
    date: str | None = None


class SectionRun(_Strict):
    """How one section was made."""

    section: str
    prompt_version: str
    prompt_tokens: int = Field(ge=0, description="tokens evaluated for this section's prompt")
    fed_tokens: int = Field(ge=0, description="scaffolding tokens fed without decoding")
    decoded_tokens: int = Field(ge=0)
    template_tokens: int = Field(ge=0, description="instruction and label tokens in the prompt")
    seconds: float = Field(ge=0)
    notes: list[str] = Field(default_factory=list)


class Provenance(_Strict):
    """Everything needed to tell how a card was made, and to make it again."""

    slmscan_version: str
    llama_cpp_version: str
    model_id: str
    model_file: str
    model_sha256: str
    prompt_versions: dict[str, str]
    seed: int
    sampling: dict[str, float | int | str]
    n_ctx: int
    threads: int
    key_cache: str = Field(default="f16", description="type of the attention keys cached")
    document_tokens: int
    template_tokens: int
    prompt_tokens: int = Field(description="prompt tokens evaluated for the whole card")
    fed_tokens: int = Field(description="quote and forced tokens evaluated without decoding")
    decoded_tokens: int
    parts: int = Field(ge=1, description="how many parts a long document was analysed in")
    truncated: bool = Field(description="always false: long documents are split, not cut")
    sections: list[SectionRun]
    notes: list[str] = Field(default_factory=list)
    seconds: float
    network_calls: int = Field(ge=0, description="connections attempted while analysing")


class Card(_Strict):
    """One document's card."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    src: str = Field(description="stable id: md5 of the URL, or sha256 of the content")
    title: str = NonEmpty
    source: Source
    keywords: list[str] = Field(default_factory=list)
    themes: list[str] = Field(default_factory=list)
    category: Category | None = None
    type: DocumentType | None = None
    summary: str | None = None
    summary_flags: list[str] = Field(
        default_factory=list,
        description="names and numbers in the summary that do not occur in the document",
    )
    signals: list[Signal] = Field(default_factory=list)
    behaviors: list[Behavior] = Field(default_factory=list)
    technologies: list[Technology] = Field(default_factory=list)
    issues: list[Issue] = Field(default_factory=list)
    provenance: Provenance

    def missing_sections(self) -> list[str]:
        """Sections of the card that came out empty (a complete card has none)."""
        fields = ("keywords", "themes", "category", "type", "summary", "signals", "behaviors",
                  "technologies", "issues")  # fmt: skip
        return [name for name in fields if not getattr(self, name)]


def card_json_schema() -> dict[str, object]:
    """The card's JSON Schema."""
    return Card.model_json_schema()
