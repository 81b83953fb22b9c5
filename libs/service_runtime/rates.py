"""Rates of the abuse limits (``service_runtime.throttling``), read in settings modules: so
nothing here imports Django."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")


@dataclass(frozen=True)
class Rate:
    limit: int
    seconds: int

    def window(self, now: float) -> tuple[int, int]:
        """The window ``now`` falls in (its number) and the whole seconds until it ends."""
        index = int(now // self.seconds)
        return index, max(1, math.ceil((index + 1) * self.seconds - now))


def parse_rate(text: str | None, *, name: str = "rate") -> Rate | None:
    """``"N/[k]unit"`` (unit s, m, h or d) → a :class:`Rate`; empty, ``off`` or ``0`` → None."""
    if text is None or text.strip().lower() in {"", "off", "0", "none"}:
        return None
    match = _RATE.match(text)
    if match is None or int(match[1]) < 1 or match[2] == "0":
        raise ValueError(f"{name}: {text!r} is not a rate such as 10/15m or 120/m.")
    return Rate(int(match[1]), int(match[2] or 1) * UNITS[match[3]])
