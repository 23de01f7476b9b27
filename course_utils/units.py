"""Units the course prints: bytes in binary units (``format_bytes``).

Taught in notebook 04, section "3. Memory anatomy, in bytes per parameter".
"""

from __future__ import annotations

import math


def format_bytes(n: float) -> str:
    """``1288490188`` -> ``"1.2 GiB"`` (binary units, one decimal; bytes as integers)."""
    if not isinstance(n, (int, float)) or isinstance(n, bool) or not math.isfinite(n) or n < 0:
        raise ValueError(f"expected a number of bytes >= 0, got {n!r}")
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"
