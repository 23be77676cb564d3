"""Plain aligned text tables: the demo's ranking, ``poetrynow poems``, the benchmarks."""

from __future__ import annotations

from collections.abc import Sequence, Set


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Set[int] = frozenset()) -> str:
    """Columns padded to their widest cell; the column numbers in ``right`` align right."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
