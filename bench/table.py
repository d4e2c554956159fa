"""Turn per-side medians into comparison rows and a plain-text table (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from bench.metrics import Direction, Metric, Target
from bench.stats import advantage

Medians = Mapping[str, float]

LEGEND = (
    "ahead = ours/theirs when higher is better (↑), theirs/ours when lower is better (↓): "
    "> 1.00x means ours is ahead"
)


@dataclass(frozen=True)
class Row:
    """One figure of one of our variants against every reference."""

    label: str
    unit: str
    direction: Direction
    ours: float | None
    refs: tuple[float | None, ...]
    ahead: tuple[float | None, ...]
    target: str
    met: bool | None


def build_rows(
    metrics: Sequence[Metric],
    targets: Sequence[Target],
    ours: Sequence[tuple[str, Medians | None]],
    refs: Sequence[tuple[str, Medians | None]],
    solo: Collection[str] = (),
) -> list[Row]:
    """Rows for each metric x each of our variants that has it.

    A variant with no figures at all (not available yet) still gets rows for
    the first variant, so the reference figures are shown. Targets are judged
    against the first reference. Variants named in ``solo`` (e.g. a simulation)
    have no counterpart: their rows show no reference figures.
    """
    by_key = {t.key: t for t in targets}
    several = len(ours) > 1
    rows: list[Row] = []
    for metric in metrics:
        ref_values = tuple(None if r is None else r.get(metric.key) for _, r in refs)
        for index, (variant, medians) in enumerate(ours):
            value = None if medians is None else medians.get(metric.key)
            theirs = tuple(None for _ in refs) if variant in solo else ref_values
            placeholder = not medians and index == 0 and any(v is not None for v in theirs)
            if value is None and not placeholder:
                continue
            ahead = tuple(
                None if value is None or r is None else advantage(value, r, metric.direction)
                for r in theirs
            )
            target = by_key.get(metric.key)
            met = None
            if target is not None:
                met = target.met(value, ahead[0] if ahead else None)
            label = f"{metric.label} [{variant}]" if several else metric.label
            rows.append(
                Row(
                    label,
                    metric.unit,
                    metric.direction,
                    value,
                    theirs,
                    ahead,
                    target.text if target else "",
                    met,
                )
            )
    return rows


def fmt(value: float | None) -> str:
    """Three significant figures or so, thousands separated; '—' for missing."""
    if value is None:
        return "—"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 10:
        return f"{value:.2f}"
    return f"{value:.3f}"


def fmt_ahead(value: float | None) -> str:
    """A ratio as '2.15x'."""
    return "—" if value is None else f"{value:.2f}x"


def fmt_met(met: bool | None) -> str:
    """yes / NO / blank when there is no target or a side is missing."""
    return "" if met is None else ("yes" if met else "NO")


def render(title: str, ours_label: str, ref_labels: Sequence[str], rows: Sequence[Row]) -> str:
    """A fixed-width table, one line per row, headed by the suite title."""
    header = ["metric", "unit", ours_label]
    for label in ref_labels:
        header += [label, "ahead"]
    header += ["target", "met"]
    body = []
    for row in rows:
        arrow = "↑" if row.direction is Direction.HIGHER else "↓"
        cells = [row.label, f"{row.unit} {arrow}", fmt(row.ours)]
        for ref, ahead in zip(row.refs, row.ahead, strict=True):
            cells += [fmt(ref), fmt_ahead(ahead)]
        cells += [row.target, fmt_met(row.met)]
        body.append(cells)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [title, _line(header, widths), _line(["-" * w for w in widths], widths)]
    lines += [_line(cells, widths) for cells in body]
    lines.append(LEGEND)
    return "\n".join(lines)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    pairs = enumerate(zip(cells, widths, strict=True))
    parts = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in pairs]
    return "  ".join(parts).rstrip()
