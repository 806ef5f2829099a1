from pathlib import Path

import pytest

from slmscan.analyse import SECTION_PROMPTS, TITLE_PROMPT
from slmscan.errors import PromptError
from slmscan.prompts import HEADINGS, load_template


@pytest.mark.parametrize("name", [*SECTION_PROMPTS.values(), TITLE_PROMPT])
def test_every_builtin_prompt_has_the_same_headings_and_renders(name: str) -> None:
    template = load_template(name)
    assert tuple(template.sections) == HEADINGS
    values = {v: "X" for v in template.variables}
    text = template.render(values)
    assert "{{" not in text and template.sections["Task"].split("{{")[0].strip() in text
    assert len(template.version) == 12


def _write(folder: Path, name: str, body: str) -> None:
    (folder / name).mkdir(parents=True)
    (folder / name / "prompt.md").write_text(body, encoding="utf-8")


def test_missing_variable_is_an_error_naming_it(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "extract_keywords",
        "# Task\nList {{count}} of {{flavour}}\n# Rules\n\n# Example\n",
    )
    template = load_template("extract_keywords", tmp_path)
    with pytest.raises(PromptError, match=r"\{\{flavour\}\}"):
        template.render({"count": "5"})


def test_user_folder_overrides_builtin_and_changes_version(tmp_path: Path) -> None:
    builtin = load_template("name_themes")
    _write(
        tmp_path, "name_themes", "# Task\nThemes please ({{count}})\n# Rules\n- short\n# Example\n"
    )
    override = load_template("name_themes", tmp_path)
    assert override.path.parent.parent == tmp_path
    assert override.render({"count": "3"}).startswith("Themes please (3)")
    assert override.version != builtin.version
    # Templates the user folder lacks still come from the built-ins.
    assert load_template("extract_issues", tmp_path).path == load_template("extract_issues").path


def test_wrong_headings_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "name_themes", "# Task\nx\n# Example\ny\n")
    with pytest.raises(PromptError, match="must have the headings"):
        load_template("name_themes", tmp_path)


def test_missing_prompt_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="does not exist"):
        load_template("name_themes", tmp_path / "nope")


def test_the_example_value_of_a_label() -> None:
    template = load_template("extract_behaviors")
    assert template.example_value("Behavior") == "Part-time car use"
    assert template.example_value("Evidence").startswith("Many commuters")
    assert template.example_value("Signal") is None
