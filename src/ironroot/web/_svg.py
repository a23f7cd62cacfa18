"""Pictures drawn on the server as SVG: a node's chain of trust and bar charts over time.

Pure: values in, markup out. Every text that comes from data is escaped
(:class:`markupsafe.Markup` formatting escapes its arguments), and colours are presentation
attributes, not ``style``, so the pages' Content-Security-Policy (no inline styles, no
scripts) holds for them too. Each picture has a ``<title>`` and says in words what its
colours say (``ok``, ``failed: <check>``), so it reads without colour as well.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from markupsafe import Markup

from ironroot.web._text import utc, visible

__all__ = ["Bar", "bar_chart", "bucket_times", "chain_svg"]

COLOURS: Final = {
    "ok": ("#e6f4ea", "#1a7f37", "#0f5323"),
    "fail": ("#fdecea", "#cf222e", "#82071e"),
    "unknown": ("#f3f4f6", "#8c959f", "#424a53"),
}
WORDS: Final = {"ok": "ok", "fail": "failed", "unknown": "not checked"}
_BOX_W: Final = 420
_BOX_H: Final = 58
_GAP: Final = 22
_MAX_TEXT: Final = 58


def _clip(text: str, size: int = _MAX_TEXT) -> str:
    """``text`` as drawn: its hidden characters shown (:func:`visible`), cut to ``size``."""
    text = visible(text)
    return text if len(text) <= size else text[: size - 1] + "…"


@dataclass(frozen=True, slots=True)
class ChainBox:
    key: str
    name: str
    status: str
    summary: str
    check: str | None = None


def chain_svg(links: Sequence[ChainBox], *, title: str) -> Markup:
    """The chain of trust as a column of boxes joined by arrows, each green (ok), red
    (failed, naming the check) or grey (not checked), linking to its details
    (``#link-<key>``)."""
    height = len(links) * (_BOX_H + _GAP) - _GAP + 8
    width = _BOX_W + 8
    parts = [
        Markup(
            '<svg xmlns="http://www.w3.org/2000/svg" class="chain" role="img" '
            'viewBox="0 0 {w} {h}" width="{w}" height="{h}" aria-labelledby="chain-title">'
            '<title id="chain-title">{t}</title>'
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="5" refY="5" markerWidth="6" '
            'markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
            'fill="#57606a"/></marker></defs>'
        ).format(w=width, h=height, t=visible(title))
    ]
    for number, link in enumerate(links):
        fill, stroke, ink = COLOURS.get(link.status, COLOURS["unknown"])
        y = 4 + number * (_BOX_H + _GAP)
        word = WORDS.get(link.status, link.status)
        verdict = f"{word}: {link.check}" if link.status == "fail" and link.check else word
        parts.append(
            Markup(
                '<a href="#link-{key}"><g class="link link-{status}" data-link="{key}" '
                'data-status="{status}">'
                '<rect x="4" y="{y}" width="{bw}" height="{bh}" rx="8" fill="{fill}" '
                'stroke="{stroke}" stroke-width="2"/>'
                '<rect x="4" y="{y}" width="10" height="{bh}" rx="4" fill="{stroke}"/>'
                '<text x="24" y="{ty}" font-size="15" font-weight="700" fill="{ink}">{name}</text>'
                '<text x="{rx}" y="{ty}" font-size="13" font-weight="700" text-anchor="end" '
                'fill="{stroke}">{verdict}</text>'
                '<text x="24" y="{sy}" font-size="12" fill="#24292f">{summary}</text>'
                "</g></a>"
            ).format(
                key=link.key,
                status=link.status,
                y=y,
                bw=_BOX_W,
                bh=_BOX_H,
                fill=fill,
                stroke=stroke,
                ink=ink,
                name=visible(link.name),
                rx=_BOX_W - 6,
                ty=y + 22,
                sy=y + 43,
                verdict=_clip(verdict, 34),
                summary=_clip(link.summary),
            )
        )
        if number + 1 < len(links):
            x = 4 + _BOX_W // 2
            parts.append(
                Markup(
                    '<line x1="{x}" y1="{a}" x2="{x}" y2="{b}" stroke="#57606a" '
                    'stroke-width="2" marker-end="url(#arrow)"/>'
                ).format(x=x, a=y + _BOX_H, b=y + _BOX_H + _GAP - 3)
            )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


# --- bar charts over time ---------------------------------------------------------------------

_BUCKETS: Final = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)
_MAX_BARS: Final = 48


@dataclass(frozen=True, slots=True)
class Bar:
    """One time bucket: its start (POSIX seconds) and a count per series."""

    start: int
    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def bucket_times(points: Sequence[tuple[int, str, int]], series: Sequence[str]) -> list[Bar]:
    """``(time, series, count)`` points summed into at most 48 buckets of a round width
    (a minute up to 30 days; wider only when 48 bars of 30 days do not span the points),
    from the first point's bucket to the last's."""
    if not points:
        return []
    first = min(p[0] for p in points)
    last = max(p[0] for p in points)
    # past 48 months, as wide as 48 bars need: a time decades away (a clock gone wrong, a
    # damaged row) would otherwise ask for a million buckets
    width = next(
        (w for w in _BUCKETS if (last - first) // w + 1 <= _MAX_BARS),
        (last - first) // (_MAX_BARS - 1) + 1,
    )
    start = first - first % width
    count = (last - start) // width + 1
    bars = [{name: 0 for name in series} for _ in range(count)]
    for time, name, value in points:
        if name in bars[0]:
            bars[(time - start) // width][name] += value
    return [Bar(start + i * width, counts) for i, counts in enumerate(bars)]


def _label(seconds: int, span: int) -> str:
    return utc(seconds, "%Y-%m-%d" if span >= 2 * 86400 else "%m-%d %H:%M")


def bar_chart(
    bars: Sequence[Bar],
    series: Mapping[str, str],
    *,
    title: str,
    width: int = 640,
    height: int = 200,
) -> Markup:
    """Stacked bars, one colour per series (``series``: name → colour), with the time of the
    first and last bar, the tallest bar's value, and a legend."""
    left, bottom, top = 40, 36, 24
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max((b.total for b in bars), default=0)
    parts = [
        Markup(
            '<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" '
            'viewBox="0 0 {w} {h}" width="{w}" height="{h}"><title>{t}</title>'
            '<text x="{left}" y="16" font-size="13" font-weight="700" fill="#24292f">{t}</text>'
            '<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="#8c959f"/>'
        ).format(w=width, h=height, t=title, left=left, base=top + plot_h, right=left + plot_w)
    ]
    if not bars or peak == 0:
        parts.append(
            Markup(
                '<text x="{x}" y="{y}" font-size="13" text-anchor="middle" fill="#57606a">'
                "nothing yet</text>"
            ).format(x=left + plot_w // 2, y=top + plot_h // 2)
        )
    else:
        slot = plot_w / len(bars)
        bar_w = min(28.0, max(2.0, slot * 0.8))
        for number, bar in enumerate(bars):
            x = left + number * slot + (slot - bar_w) / 2
            y = float(top + plot_h)
            for name, colour in series.items():
                value = bar.counts.get(name, 0)
                if not value:
                    continue
                h = plot_h * value / peak
                y -= h
                parts.append(
                    Markup(
                        '<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
                        'fill="{c}"><title>{n}: {v}</title></rect>'
                    ).format(x=x, y=y, w=bar_w, h=h, c=colour, n=name, v=value)
                )
        span = bars[-1].start - bars[0].start
        parts.append(
            Markup(
                '<text x="{left}" y="{ly}" font-size="11" fill="#57606a">{a}</text>'
                '<text x="{right}" y="{ly}" font-size="11" text-anchor="end" '
                'fill="#57606a">{b}</text>'
                '<text x="{lx}" y="{ty}" font-size="11" text-anchor="end" '
                'fill="#57606a">{peak}</text>'
                '<text x="{lx}" y="{base}" font-size="11" text-anchor="end" fill="#57606a">0</text>'
            ).format(
                left=left,
                right=left + plot_w,
                ly=top + plot_h + 16,
                a=_label(bars[0].start, span),
                b=_label(bars[-1].start, span),
                lx=left - 6,
                ty=top + 10,
                peak=peak,
                base=top + plot_h,
            )
        )
    x = left
    for name, colour in series.items():
        parts.append(
            Markup(
                '<rect x="{x}" y="{y}" width="10" height="10" fill="{c}"/>'
                '<text x="{tx}" y="{ty}" font-size="11" fill="#24292f">{n}</text>'
            ).format(x=x, y=height - 12, c=colour, tx=x + 14, ty=height - 3, n=name)
        )
        x += 24 + 7 * len(name)
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
