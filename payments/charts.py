"""Bar charts as inline SVG markup, drawn on the server: no JavaScript, no library, nothing from
another origin (the Content-Security-Policy allows no inline script anyway).

Accessible: the SVG is an image (`role="img"`) named by its <title> and summed up by its <desc>;
each bar has a <title> with its label and value (a tooltip), the highest value and the first
and last label are written as text, and the screens show the same numbers in a table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

# Colour-blind-safe (Okabe-Ito), enough for the gateways of one chart.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def bar_chart(
    *,
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    value_text: Callable[[float], str] = _number,
    max_value: float | None = None,
    width: int = 720,
    height: int = 180,
) -> SafeString:
    """Stacked bars, one per label (a day), one segment per series (a gateway).

    `max_value` fixes the top of the scale (100 for a rate); otherwise the highest stack.
    Every text that reaches the markup is escaped; `chart_id` makes the ids unique on a page.
    """
    left, right, top, bottom = 8, 8, 22, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    scale_top = max_value if max_value is not None else max(totals, default=0)
    slot = plot_w / max(len(labels), 1)
    bar_w = max(slot * 0.75, 1.0)
    highest = max(range(len(labels)), key=lambda i: totals[i], default=None)
    summary = (
        f"{len(labels)} bars from {labels[0]} to {labels[-1]}; highest "
        f"{value_text(totals[highest])} on {labels[highest]}."
        if labels and highest is not None
        else "No data."
    )
    parts = [
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            'viewBox="0 0 {} {}" aria-labelledby="{}-title {}-desc">'
            '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>',
            width,
            height,
            chart_id,
            chart_id,
            chart_id,
            title,
            chart_id,
            summary,
        ),
        format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#57606a" stroke-width="1"/>',
            left,
            top + plot_h,
            left + plot_w,
            top + plot_h,
        ),
        format_html(
            '<text x="{}" y="{}" font-size="11" fill="#57606a">max {}</text>',
            left,
            top - 8,
            value_text(scale_top),
        ),
    ]
    for i, label in enumerate(labels):
        x = left + i * slot + (slot - bar_w) / 2
        y = float(top + plot_h)
        for n, one in enumerate(series):
            value = one.values[i]
            if value <= 0 or scale_top <= 0:
                continue
            h = plot_h * min(value / scale_top, 1.0)
            y -= h
            name = f"{one.name}: " if len(series) > 1 else ""
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}">'
                    "<title>{} {}{}</title></rect>",
                    f"{x:.1f}",
                    f"{y:.1f}",
                    f"{bar_w:.1f}",
                    f"{h:.1f}",
                    PALETTE[n % len(PALETTE)],
                    label,
                    name,
                    value_text(value),
                )
            )
    # The first, middle and last labels under the axis: enough to read the days by.
    for i in sorted({0, len(labels) // 2, len(labels) - 1} if labels else set()):
        anchor = "start" if i == 0 else "end" if i == len(labels) - 1 else "middle"
        x = left if i == 0 else left + plot_w if i == len(labels) - 1 else left + (i + 0.5) * slot
        parts.append(
            format_html(
                '<text x="{}" y="{}" font-size="11" text-anchor="{}" fill="#1b1f24">{}</text>',
                f"{x:.1f}",
                top + plot_h + 14,
                anchor,
                labels[i],
            )
        )
    if len(series) > 1:  # the legend
        x = float(left)
        for n, one in enumerate(series):
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="10" height="10" fill="{}"/>'
                    '<text x="{}" y="{}" font-size="11" fill="#1b1f24">{}</text>',
                    f"{x:.1f}",
                    height - 12,
                    PALETTE[n % len(PALETTE)],
                    f"{x + 14:.1f}",
                    height - 3,
                    one.name,
                )
            )
            x += 24 + 7 * len(one.name)
    # Each part is already safe (format_html escaped its values): joined as is, then closed.
    return format_html("{}</svg>", format_html_join("", "{}", ((part,) for part in parts)))
