"""slmscan: turn documents into structured cards with a small language model on your own CPU."""

from __future__ import annotations

__version__ = "0.1.0"
