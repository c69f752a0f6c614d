"""The end of `make bench`: every figure the benches wrote to var/bench/*.json in one table,
beside its floor measured in the same run and the issue's target, and the plots as PNG files
in var/bench/ (matplotlib, drawn off-screen).

    .venv/bin/python bench/summary.py       # after any bench; reads what var/bench/ holds
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from measuring import OUT, ROOT, target_met

TARGET_MS = {"p50": 50, "p95": 100, "p99": 15}


def reports() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(OUT.glob("*.json"))]


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return f"{text} {unit}".strip()


def table(documents: list[dict[str, Any]]) -> list[str]:
    rows = [("bench", "measure", "value", "floor", "ratio", "target", "met", "load avg")]
    for doc in documents:
        load = " ".join(f"{v:.1f}" for v in doc["load_average_end"])
        for figure in doc["figures"]:
            floor = figure.get("floor")
            met = target_met(figure)
            rows.append(
                (
                    doc["bench"],
                    figure["name"],
                    _number(figure["value"], figure["unit"]),
                    f"{_number(floor, figure['unit'])} {figure.get('floor_name', '')}".strip(),
                    f"{figure['value'] / floor:.2f}x" if floor else "",
                    figure.get("target") or "",
                    {True: "yes", False: "NO", None: ""}[met],
                    load,
                )
            )
    widths = [min(max(len(row[i]) for row in rows), 56) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = zip(row, widths, strict=True)
        lines.append("  ".join(cell[:56].ljust(width) for cell, width in cells))
        if n == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def _save(figure: Any, name: str) -> Path:
    path = OUT / name
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_lists(doc: dict[str, Any]) -> Path | None:
    """p50 and p95 of every list at every size measured, beside the targets."""
    sizes = doc["details"].get("sizes", {})
    if not sizes:
        return None
    names = list(next(iter(sizes.values()))["lists"])
    figure, axes = plt.subplots(figsize=(11, 0.38 * len(names) * len(sizes) + 2))
    height = 0.8 / len(sizes)
    for n, (size, measured) in enumerate(sorted(sizes.items(), key=lambda kv: int(kv[0]))):
        ys = [i + n * height for i in range(len(names))]
        p95 = [measured["lists"].get(name, {}).get("p95", 0) for name in names]
        p50 = [measured["lists"].get(name, {}).get("p50", 0) for name in names]
        label = f"{int(size):,} payments"
        axes.barh(ys, p95, height, alpha=0.35, color=f"C{n}", label=f"{label}, p95")
        axes.barh(ys, p50, height, color=f"C{n}", label=f"{label}, p50")
        in_db = [measured["lists"].get(name, {}).get("db_p50", 0) for name in names]
        axes.scatter(in_db, ys, marker="|", s=120, color="black", zorder=3)
    floor = max(m["floor"]["p50"] for m in sizes.values())
    axes.axvline(floor, color="grey", linestyle=":", label=f"/healthz p50 ({floor:.0f} ms)")
    axes.axvline(TARGET_MS["p50"], color="green", linestyle="--", label="target p50 (50 ms)")
    axes.axvline(TARGET_MS["p95"], color="red", linestyle="--", label="target p95 (100 ms)")
    axes.set_yticks([i + height * (len(sizes) - 1) / 2 for i in range(len(names))], names)
    axes.invert_yaxis()
    axes.set_xlabel("milliseconds (warm requests through the test client)")
    axes.set_title(
        "Lists and searches by size: p50 (solid), p95 (light), the database's p50 (black mark)"
    )
    axes.legend(loc="lower right", fontsize="small")
    return _save(figure, "lists_at_volume.png")


def plot_floors(documents: list[dict[str, Any]]) -> Path | None:
    """Each measure that has a floor, as a multiple of it, with the target's multiple (the
    lists have their own plot)."""
    bars = [
        (f"{doc['bench']}: {f['name']}", f["value"] / f["floor"], f.get("target") or "")
        for doc in documents
        if doc["bench"] != "lists_at_volume"
        for f in doc["figures"]
        if f.get("floor")
    ]
    if not bars:
        return None
    figure, axes = plt.subplots(figsize=(11, 0.4 * len(bars) + 1.5))
    ys = range(len(bars))
    axes.barh(ys, [ratio for _, ratio, _ in bars], color="C0")
    for y, (_, ratio, target) in zip(ys, bars, strict=True):
        if target.endswith("x"):
            bound = float(target.split()[-1].rstrip("x"))
            axes.plot([bound, bound], [y - 0.4, y + 0.4], color="red", linewidth=2)
        axes.text(ratio, y, f" {ratio:.2f}x", va="center", fontsize="small")
    axes.axvline(1, color="grey", linewidth=1)
    axes.set_yticks(list(ys), [name for name, _, _ in bars], fontsize="small")
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("measure / its floor in the same run (log scale; red: the target's bound)")
    axes.set_title("Each measure against its floor")
    return _save(figure, "floors.png")


def _bars(axes: Axes, labels: list[str], values: list[float], unit: str, title: str) -> None:
    axes.bar(range(len(values)), values, color=[f"C{i}" for i in range(len(values))])
    axes.set_xticks(range(len(values)), labels, fontsize="small", rotation=15)
    axes.set_ylabel(unit)
    axes.set_title(title)
    for x, value in enumerate(values):
        axes.text(x, value, f"{value:,.0f}", ha="center", va="bottom", fontsize="small")


def plot_verify(by_bench: dict[str, dict[str, Any]]) -> Path | None:
    """verify_audit_chain's rows per second, from audit_verify and volume."""
    labels, values = [], []
    for bench in ("audit_verify", "volume"):
        for f in by_bench.get(bench, {}).get("figures", []):
            if f["unit"] == "rows/s" and "verify" in f["name"]:
                rows = by_bench[bench]["details"].get("rows") or by_bench[bench]["details"].get(
                    "verify_rows", 0
                )
                labels.append(f"{f['name']}\n({rows:,} rows)")
                values.append(f["value"])
    if not values:
        return None
    figure, axes = plt.subplots(figsize=(8, 4.5))
    _bars(axes, labels, values, "rows/s", "verify_audit_chain")
    axes.axhline(100_000, color="red", linestyle="--", label="target (100,000 rows/s)")
    axes.legend(fontsize="small")
    return _save(figure, "verify.png")


def plot_scoring(doc: dict[str, Any] | None) -> Path | None:
    """Fraud scoring's cost per payment against the payments stored (it should stay flat)."""
    rounds = (doc or {}).get("details", {}).get("rounds", [])
    if not rounds:
        return None
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for p, style in ((50, "o-"), (95, "s--")):
        values = [sorted(r["ms"])[min(len(r["ms"]) - 1, p * len(r["ms"]) // 100)] for r in rounds]
        axes.plot([r["stored"] for r in rounds], values, style, label=f"p{p}")
    axes.set_xscale("log")
    axes.set_xlabel("payments stored")
    axes.set_ylabel("ms per payment scored")
    axes.set_ylim(bottom=0)
    axes.set_title("Fraud scoring cost vs stored payments")
    axes.legend()
    return _save(figure, "fraud_scoring.png")


def main() -> None:
    documents = reports()
    if not documents:
        print("No bench figures in var/bench/ yet: run a bench first.")
        return
    print(f"\nmake bench, every figure (from {OUT.relative_to(ROOT)}/*.json):")
    for line in table(documents):
        print(f"  {line}")
    by_bench = {doc["bench"]: doc for doc in documents}
    drawn = [
        plot_lists(by_bench["lists_at_volume"]) if "lists_at_volume" in by_bench else None,
        plot_floors(documents),
        plot_verify(by_bench),
        plot_scoring(by_bench.get("fraud_scoring")),
    ]
    for path in drawn:
        if path is not None:
            print(f"  plot: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
