"""Which table columns fit the width the pane has (no Textual imports)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column a table may show.

    ``drop`` is 0 for essential columns; optional columns are dropped in
    descending ``drop`` order when the pane is too narrow.  A ``flex`` column
    takes the width left over, between ``width`` and ``max_width``.
    """

    key: str
    label: str
    width: int
    drop: int = 0
    right: bool = False
    flex: bool = False
    max_width: int = 0


@dataclass(frozen=True, slots=True)
class ShownColumn:
    """A column chosen for display, with its final width."""

    spec: ColumnSpec
    width: int

    @property
    def key(self) -> str:
        return self.spec.key


def fit_columns(specs: Sequence[ColumnSpec], available: int, padding: int = 1) -> list[ShownColumn]:
    """The columns that fit in ``available`` cells, in their original order.

    Essential columns are always kept (they are sized to fit 60 columns);
    optional ones are added from the lowest ``drop`` up while they fit.
    """
    cost = lambda spec: spec.width + 2 * padding  # noqa: E731
    chosen = {s.key for s in specs if s.drop == 0}
    used = sum(cost(s) for s in specs if s.drop == 0)
    for spec in sorted((s for s in specs if s.drop), key=lambda s: s.drop):
        if used + cost(spec) <= available:
            chosen.add(spec.key)
            used += cost(spec)
    spare = max(0, available - used)
    shown = []
    for spec in specs:
        if spec.key not in chosen:
            continue
        width = spec.width
        if spec.flex and spare:
            extra = min(spare, max(0, spec.max_width - spec.width))
            width += extra
            spare -= extra
        shown.append(ShownColumn(spec, width))
    return shown
