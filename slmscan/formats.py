"""Prompt formats by model family, taken from the manifest and never from the model file.

A model's GGUF may carry a Jinja chat template; slmscan never renders it (it is code from the
file's author). Chat markers are written here and tokenised as control tokens; the document's
own text is always tokenised as plain text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PromptFormat:
    """The markup around a system message, a user turn and the model's answer."""

    system_start: str
    user_start: str
    turn_end: str
    answer_start: str
    system_in_user: bool = False  # families without a system role get it at the top of the turn


SYSTEM = (
    "You are a careful analyst. You read a document and describe it faithfully, "
    "in the exact format asked, using only what the document says."
)

FORMATS: dict[str, PromptFormat] = {
    "chatml": PromptFormat(
        "<|im_start|>system\n", "<|im_start|>user\n", "<|im_end|>\n", "<|im_start|>assistant\n"
    ),
    "gemma": PromptFormat(
        "",
        "<start_of_turn>user\n",
        "<end_of_turn>\n",
        "<start_of_turn>model\n",
        system_in_user=True,
    ),
    "llama3": PromptFormat(
        "<|start_header_id|>system<|end_header_id|>\n\n",
        "<|start_header_id|>user<|end_header_id|>\n\n",
        "<|eot_id|>",
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
    "phi3": PromptFormat("<|system|>\n", "<|user|>\n", "<|end|>\n", "<|assistant|>\n"),
    # A base model continues text: the same layout, with no markup at all.
    "completion": PromptFormat("", "", "\n", "", system_in_user=True),
}


def prompt_format(family: str) -> PromptFormat:
    """The format for a manifest's family."""
    return FORMATS[family]
