"""What ``loopbridge.health.report()`` and ``%aio health`` show: lag per loop, and stalls."""

from __future__ import annotations

import html
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from .._inspect import _short_path
from .._views import _View, html_table, text_table
from ._monitor import StallRecord

if TYPE_CHECKING:
    from ._monitor import Monitor

__all__ = ["HealthView"]

_BARS = "▁▂▃▄▅▆▇█"
_HEADERS = ("loop", "thread", "beats", "p50", "p90", "p99", "max", "recent")
_STALLS_SHOWN = 10


def _ms(seconds: float) -> str:
    if seconds >= 10:
        return f"{seconds:.1f} s"
    if seconds >= 0.0995:
        return f"{seconds * 1e3:.0f} ms"
    return f"{seconds * 1e3:.1f} ms"


def sparkline(values: list[float]) -> str:
    """Unicode bars, one per sample, scaled to the largest."""
    if not values:
        return ""
    top = max(values) or 1.0
    return "".join(_BARS[min(len(_BARS) - 1, int(v / top * (len(_BARS) - 1)))] for v in values)


def sparkline_svg(values: list[float], width: int = 120, height: int = 16) -> str:
    """An inline SVG polyline (no plotting library needed)."""
    if len(values) < 2:
        return ""
    top = max(values) or 1.0
    step = width / (len(values) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - 1 - (v / top) * (height - 2):.1f}" for i, v in enumerate(values)
    )
    return (
        f"<svg width='{width}' height='{height}' style='vertical-align:middle'>"
        f"<polyline fill='none' stroke='currentColor' stroke-width='1' points='{points}'/>"
        "</svg>"
    )


class HealthView(_View):
    """Lag per watched loop (percentiles, max, recent samples), then the stall records.

    Example::

        view = loopbridge.health.report()
        view.to_records()          # one row per loop
        view.stall_records()       # one row per stall
    """

    def __init__(self, loops: list[dict[str, Any]], stalls: list[StallRecord], active: bool):
        self.loops = loops
        self.stalls = stalls
        self.active = active

    @classmethod
    def from_monitor(cls, monitor: Monitor) -> HealthView:
        loops = []
        for beat in list(monitor.beats.values()):
            h = beat.hist
            loops.append(
                {
                    "loop": beat.label or "?",
                    "thread": beat.thread_name,
                    "beats": h.count,
                    "p50": h.percentile(50),
                    "p90": h.percentile(90),
                    "p99": h.percentile(99),
                    "max": h.max,
                    "recent": list(h.recent),
                }
            )
        loops.sort(key=lambda r: str(r["loop"]))
        return cls(loops, list(monitor.records), monitor.active)

    def _rows(self) -> list[list[str]]:
        return [
            [
                str(r["loop"]),
                str(r["thread"]),
                str(r["beats"]),
                _ms(r["p50"]),
                _ms(r["p90"]),
                _ms(r["p99"]),
                _ms(r["max"]),
                sparkline(r["recent"][-40:]),
            ]
            for r in self.loops
        ]

    def _head(self) -> str:
        if not self.active and not self.loops:
            return "loop health is off: loopbridge.health.start() or %aio health start"
        state = "on" if self.active else "stopped"
        return f"loop health ({state}): scheduling lag per loop"

    def _stall_lines(self, stall: StallRecord) -> list[str]:
        lines = [stall.summary()]
        if stall.code:
            lines.append(f"    {stall.code}")
        if stall.samples:
            first, last = stall.samples[0], stall.samples[-1]
            lines.append(f"    stack at {_ms(stall.sampled_at[0])}:")
            lines.extend(f"      {_short_where(f)}" for f in first[:6])
            if len(stall.samples) > 1 and last != first:
                lines.append(f"    stack at {_ms(stall.sampled_at[-1])}:")
                lines.extend(f"      {_short_where(f)}" for f in last[:6])
        return lines

    def text(self) -> str:
        out = [self._head()]
        if self.loops:
            out.append(text_table(_HEADERS, self._rows()))
        shown = self.stalls[-_STALLS_SHOWN:]
        if shown:
            out.append(f"\nstalls ({len(self.stalls)}, the last {len(shown)} shown):")
            for stall in shown:
                out.extend(self._stall_lines(stall))
        elif self.loops:
            out.append("\nno stalls")
        return "\n".join(out)

    def _repr_html_(self) -> str:
        esc = html.escape
        parts = [f"<p>{esc(self._head())}</p>"]
        if self.loops:
            rows = self._rows()
            table = html_table(_HEADERS, rows)
            # the sparkline column as SVG instead of text bars
            for r, record in zip(rows, self.loops, strict=True):
                bars = r[-1]
                if bars:
                    svg = sparkline_svg(record["recent"][-40:])
                    table = table.replace(f">{esc(bars)}</td>", f">{svg}</td>", 1)
            parts.append(table)
        for stall in self.stalls[-_STALLS_SHOWN:]:
            lines = self._stall_lines(stall)
            parts.append(
                f"<details><summary>{esc(lines[0])}</summary>"
                f"<pre>{esc(chr(10).join(lines[1:]))}</pre></details>"
            )
        return "".join(parts)

    def to_records(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "recent"} for r in self.loops]

    def stall_records(self) -> list[dict[str, Any]]:
        """One plain dict per stall (every field of :class:`StallRecord`)."""
        return [asdict(s) for s in self.stalls]


def _short_where(entry: str) -> str:
    path, _, rest = entry.partition(":")
    return f"{_short_path(path)}:{rest}"
