"""Draws the comparison: DIR/compare.json (the Rust rows) and, if present, DIR/python.json and
DIR/python_projection.json (the Python rows) into DIR/compare.png.

    python benches/compare/chart.py [DIR]    (default target/compare)

Rows with a ratio get one horizontal bar each: tidings' median over the first baseline's, on
a log scale, with parity (1.0) and the row's target marked; green when the target is met, red
when it is missed. Rows without a ratio (absolute targets, such as latencies) are listed
below the bars with their median and target.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

MET, MISSED, UNKNOWN = "#3a8f3a", "#c0392b", "#8c8c8c"


def load(directory: pathlib.Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((directory / "compare.json").read_text())
    for extra in ("python.json", "python_projection.json"):
        path = directory / extra
        if path.exists():
            rows += json.loads(path.read_text())
    return rows


def target_value(target: str) -> Optional[float]:
    """The first `>= 1.5x` / `<= 2x` figure of a target, which the ratio is measured against."""
    match = re.search(r"[<>]=?\s*([0-9]*\.?[0-9]+)\s*x", target)
    return float(match.group(1)) if match else None


def color(met: Optional[bool]) -> str:
    return UNKNOWN if met is None else MET if met else MISSED


def fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def draw(rows: list[dict[str, Any]], path: pathlib.Path) -> None:
    ratio_rows = [r for r in rows if r.get("ratio") is not None]
    other_rows = [r for r in rows if r.get("ratio") is None]
    bars_height = 0.85 * max(len(ratio_rows), 1) + 1.2
    text_height = 0.3 * len(other_rows) + 0.7 if other_rows else 0.0
    fig = plt.figure(figsize=(12, bars_height + text_height + 0.3), layout="constrained")
    if other_rows:
        bars_ax, text_ax = fig.subplots(2, 1, height_ratios=[bars_height, text_height])
    else:
        bars_ax, text_ax = fig.subplots(1, 1), None
    draw_ratios(bars_ax, ratio_rows)
    if text_ax is not None:
        draw_absolutes(text_ax, other_rows)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def draw_ratios(ax: Any, rows: list[dict[str, Any]]) -> None:
    bar_height = 0.55
    # Top to bottom in the order the rows were written.
    ys = list(range(len(rows)))[::-1]
    values = [r["ratio"] for r in rows]
    targets = [target_value(r.get("target", "")) for r in rows]
    # Each bar runs from parity to the ratio: right of 1.0 tidings is ahead, left of it behind.
    ax.barh(ys, [v - 1.0 for v in values], left=1.0, height=bar_height, color=[color(r.get("met")) for r in rows])
    ax.set_xscale("log")
    shown = [v for v in values + targets if v] or [1.0]
    low, high = min(min(shown), 1.0) / 1.5, max(max(shown), 1.0) * 1.5
    ax.set_xlim(low, high)
    ax.axvline(1.0, color="black", linewidth=1.2)
    for y, value, target, row in zip(ys, values, targets, rows):
        if target is not None:
            ax.plot([target, target], [y - bar_height / 2 - 0.1, y + bar_height / 2 + 0.1], color="black",
                    linewidth=2.2, linestyle=(0, (2, 1)))
        right = value >= 1.0
        nudge, align = (1.02, "left") if right else (1 / 1.02, "right")
        box = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0}
        ax.text(value * nudge, y, f"{value:.2f}x", va="center", ha=align, fontsize=9.5, fontweight="bold",
                bbox=box)
        # The row's other baselines, under its bar, right of parity.
        others = [f"{row['tidings']['median'] / b['median']:.2f}x vs {b['name']}" for b in row["baselines"][1:]]
        if others:
            ax.text(1.01, y - bar_height / 2 - 0.04, "\n".join(others), va="top", ha="left", fontsize=7.5,
                    color="#444444", bbox=box)
    labels = [
        f"{r['title']}\nvs {r['baselines'][0]['name']}\ntarget {r.get('target', '')}"
        f"{'' if r.get('met') is None else ': met' if r['met'] else ': MISSED'}"
        for r in rows
    ]
    ax.set_yticks(ys, labels, fontsize=8.5)
    for tick, row in zip(ax.get_yticklabels(), rows):
        tick.set_color("black" if row.get("met") is not False else MISSED)
    ax.set_ylim(-0.8, len(rows) - 0.3)
    ticks = [t for t in (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10, 20, 30, 50, 100) if low <= t <= high]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.grid(axis="x", color="#dddddd", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.set_xlabel("tidings median / first baseline median (log scale; right of 1.0: tidings ahead)")
    ax.set_title("tidings side by side, ratio of medians per row", loc="left", fontsize=11)
    ax.legend(
        handles=[
            Patch(color=MET, label="target met"),
            Patch(color=MISSED, label="target missed"),
            Line2D([], [], color="black", linewidth=2.2, linestyle=(0, (2, 1)), label="target"),
        ],
        loc="lower right",
        fontsize=8,
        framealpha=0.9,
    )
    if not rows:
        ax.text(1.0, 0, "no rows with a ratio", ha="center", va="center")


def draw_absolutes(ax: Any, rows: list[dict[str, Any]]) -> None:
    ax.axis("off")
    ax.set_title("rows with absolute targets", loc="left", fontsize=11)
    table = ax.table(
        cellText=[
            [r["title"], (r.get("notes") or [f"{fmt(r['tidings']['median'])} {r['unit']}"])[0], r.get("target", ""),
             {True: "met", False: "MISSED", None: "-"}[r.get("met")]]
            for r in rows
        ],
        colLabels=["row", "measured (medians)", "target", ""],
        colWidths=[0.39, 0.26, 0.28, 0.07],
        colLoc="left",
        cellLoc="left",
        loc="upper left",
        edges="horizontal",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    for (i, j), cell in table.get_celld().items():
        if i > 0 and j == 3:
            cell.get_text().set_color(color(rows[i - 1].get("met")))


def main() -> None:
    directory = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/compare")
    rows = load(directory)
    draw(rows, directory / "compare.png")
    print(f"chart: {directory / 'compare.png'} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
