"""Turn per-side medians into comparison rows and a plain-text table (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from bench.metrics import Direction, Metric, Target
from bench.stats import advantage

Medians = Mapping[str, float]

LEGEND = (
    "ahead = ours/theirs when higher is better (↑), theirs/ours when lower is better (↓): "
    "> 1.00x means ours is ahead\n"
    "met (k/n): the target, judged on the medians; it held in k of the n runs taken "
    "side by side (run i of ours against run i of the reference)"
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
    runs_met: tuple[int, int] | None = None
    """(runs where the target held, runs judged), run by run."""


def build_rows(
    metrics: Sequence[Metric],
    targets: Sequence[Target],
    ours: Sequence[tuple[str, Medians | None]],
    refs: Sequence[tuple[str, Medians | None]],
    solo: Collection[str] = (),
    per_run: Mapping[str, Sequence[Medians | None]] | None = None,
) -> list[Row]:
    """Rows for each metric x each of our variants that has it.

    A variant with no figures at all (not available yet) still gets rows for
    the first variant, so the reference figures are shown. Targets are judged
    against the first reference. Variants named in ``solo`` (e.g. a simulation)
    have no counterpart: their rows show no reference figures. ``per_run`` (each
    side's figures run by run, None for a failed run) adds how many runs met each
    target: on a noisy machine a median alone does not say how robust a result is.
    """
    first_ref = refs[0][0] if refs else None
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
            met = runs_met = None
            if target is not None:
                met = target.met(value, ahead[0] if ahead else None)
                if per_run is not None and value is not None:
                    theirs_runs: Sequence[Medians | None] = ()
                    if first_ref is not None and variant not in solo:
                        theirs_runs = per_run.get(first_ref, ())
                    runs_met = _runs_met(target, metric, per_run.get(variant, ()), theirs_runs)
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
                    runs_met,
                )
            )
    return rows


def _runs_met(
    target: Target,
    metric: Metric,
    ours: Sequence[Medians | None],
    theirs: Sequence[Medians | None],
) -> tuple[int, int] | None:
    """How many runs met ``target``: a relative one pairs run i of each side."""
    verdicts = []
    for index, run in enumerate(ours):
        value = None if run is None else run.get(metric.key)
        ref_run = theirs[index] if index < len(theirs) else None
        ref = None if ref_run is None else ref_run.get(metric.key)
        ahead = None if value is None or ref is None else advantage(value, ref, metric.direction)
        verdict = target.met(value, ahead)
        if verdict is not None:
            verdicts.append(verdict)
    return (sum(verdicts), len(verdicts)) if verdicts else None


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


def fmt_met(met: bool | None, runs_met: tuple[int, int] | None = None) -> str:
    """yes / NO / blank when there is no target or a side is missing; with the
    runs that met it, e.g. 'yes (4/5)'."""
    if met is None:
        return ""
    text = "yes" if met else "NO"
    return text if runs_met is None else f"{text} ({runs_met[0]}/{runs_met[1]})"


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
        cells += [row.target, fmt_met(row.met, row.runs_met)]
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
