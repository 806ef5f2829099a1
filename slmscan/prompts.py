"""Prompt templates: one folder per section in `prompts/`, each with a `prompt.md`.

Every template has the same three headings, `# Task`, `# Rules` and `# Example`, and may use
`{{variable}}` placeholders. A user's folder (`--prompts DIR` or SLMSCAN_PROMPTS) overrides
any built-in template of the same name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from . import config
from .errors import PromptError

HEADINGS = ("Task", "Rules", "Example")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_EXAMPLE_PREFIX = re.compile(r"^\s*(?:-\s+|[A-Za-z][\w ()-]{0,20}:)")
_HEADING = re.compile(r"^# (.+?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class PromptTemplate:
    """One section's prompt, parsed from its `prompt.md`."""

    name: str
    path: Path
    sections: dict[str, str]

    @property
    def version(self) -> str:
        """A short hash of the template text: changes whenever the prompt does."""
        text = "\n".join(f"{k}\n{v}" for k, v in self.sections.items())
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def variables(self) -> set[str]:
        """The placeholders the template uses."""
        return {m.group(1) for text in self.sections.values() for m in _PLACEHOLDER.finditer(text)}

    @property
    def example_text(self) -> str:
        """The example's answers without their labels."""
        lines = (_EXAMPLE_PREFIX.sub("", line) for line in self.sections["Example"].splitlines())
        return "\n".join(line.strip().strip('"') for line in lines if line.strip())

    @property
    def instructions_text(self) -> str:
        """The task and the rules, placeholders unfilled (what a field must not copy)."""
        return f"{self.sections['Task']}\n{self.sections['Rules']}"

    def example_value(self, label: str) -> str | None:
        """What the example writes after `label:` ("Behavior" -> "Part-time car use")."""
        for line in self.sections["Example"].splitlines():
            head, colon, value = line.partition(":")
            if colon and head.strip().lstrip("- ") == label:
                return value.strip().strip('"') or None
        return None

    def render(self, values: dict[str, str]) -> str:
        """The instruction text, placeholders filled; a placeholder with no value is an error."""
        missing = sorted(self.variables - values.keys())
        if missing:
            provided = ", ".join(sorted(values)) or "none"
            raise PromptError(
                f"prompt {self.name} ({self.path}) uses {{{{{missing[0]}}}}}, "
                f"which slmscan does not provide (it provides: {provided})"
            )
        parts = [self.sections["Task"], self.sections["Rules"]]
        if self.sections["Example"]:
            parts.append("Example of the format:\n" + self.sections["Example"])
        text = "\n\n".join(p for p in parts if p)
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def parse_template(name: str, path: Path) -> PromptTemplate:
    """Parse a `prompt.md`; its headings must be exactly Task, Rules, Example."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PromptError(f"prompt {name}: cannot read {path} ({e})") from e
    headings = _HEADING.findall(text)
    if tuple(headings) != HEADINGS:
        raise PromptError(
            f"prompt {name} ({path}) must have the headings "
            f"{', '.join('# ' + h for h in HEADINGS)} in that order; found "
            f"{', '.join('# ' + h for h in headings) or 'none'}"
        )
    bodies = _HEADING.split(text)[2::2]
    return PromptTemplate(name, path, {h: b.strip() for h, b in zip(HEADINGS, bodies, strict=True)})


def load_template(name: str, override: Path | None = None) -> PromptTemplate:
    """The template called `name`: the user's override if it has one, else the built-in."""
    folders = [f for f in (override, config.prompts_override()) if f is not None]
    for folder in folders:
        if not folder.is_dir():
            raise PromptError(f"prompt folder {folder} does not exist")
        candidate = folder / name / "prompt.md"
        if candidate.is_file():
            return parse_template(name, candidate)
    builtin = config.resource_dir("prompts") / name / "prompt.md"
    if not builtin.is_file():
        raise PromptError(f"no prompt template called {name} ({builtin} is missing)")
    return parse_template(name, builtin)
