"""slmscan: turn documents into structured cards with a small language model on your own CPU.

The public API is re-exported here and imported on first use, so that `slmscan --help` and
`import slmscan` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Article": "document",
    "Card": "card",
    "RawDocument": "document",
    "ScanOptions": "scanner",
    "ScanResult": "scanner",
    "Scanner": "scanner",
    "SlmscanError": "errors",
    "extract_article": "extract",
    "read_source": "sources",
    "render_json": "render",
    "render_markdown": "render",
}
__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'slmscan' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
