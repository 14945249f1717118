"""The HTML report's pictures: matplotlib figures written as inline SVG (`svg(figure)`), one per `grader.report.figures`
data kind. No pyplot and no backend switch: each picture is a `matplotlib.figure.Figure` of its own, so drawing
touches no global state of a process that also grades. Text stays text in the SVG (searchable, small); an image
(the wrong-element map) is embedded in it as PNG data, so the page needs nothing beside itself.
"""

from __future__ import annotations

import io
import re
from typing import Any, Callable

from grader.report import figures as f

COLORS = {"candidate": "#1f77b4", "fast_dequantize": "#ff7f0e", "bnb": "#7f7f7f", "naive": "#9e9e9e",
          "ok": "#2e7d32", "bad": "#c62828", "floor": "#6a1b9a", "compiled": "#5c6bc0"}
WIDTH_IN = 9.0
GIB = 2**30
# Text stays text; the SVG's ids are salted per picture (set in `svg`), so that two pictures on a page share none.
RC = {"svg.fonttype": "none", "font.size": 9}


def _kernel_times(fig: Any, d: f.KernelTimes) -> None:
    ax = fig.subplots()
    n = len(d.weights)
    height = 0.8 / len(f.SPEED_SERIES)
    for i, series in enumerate(f.SPEED_SERIES):
        ys = [k + (i - 1) * height for k in range(n)]
        values = [v if v is not None else 0.0 for v in d.times_us[series]]
        ax.barh(ys, values, height=height, color=COLORS[series], label=series)
    floors = [(k, x) for k, x in enumerate(d.floor_us) if x is not None]
    if floors:
        ax.scatter([x for _, x in floors], [k for k, _ in floors], marker="|", s=300, color="black", zorder=3,
                   label="byte floor (bytes moved / copy bandwidth)")
    for k, (t, pct) in enumerate(zip(d.times_us["candidate"], d.bandwidth_pct)):
        if t is not None and pct is not None:
            ax.annotate(f" {pct:.0f}% of copy bandwidth", (t, k - height), va="center", fontsize=7)
    ax.set_yticks(range(n), d.weights)
    ax.invert_yaxis()
    ax.set_xlabel("µs (median)")
    passes = ", ".join(f"{p:.3f}x" for p in d.passes)
    ax.set_title(f"speedup over fast_dequantize per pass: {passes}" if passes else "kernel time per weight")
    _legend(fig, ax)


def _wrong_map(fig: Any, d: f.WrongMap) -> None:
    ax = fig.subplots()
    image = ax.imshow(d.counts, aspect="auto", cmap="Reds", interpolation="nearest", vmin=0,
                      extent=(-0.5, d.blocksize - 0.5, len(d.counts) - 0.5, -0.5))
    ax.set_xlabel(f"position in the absmax block (0 to {d.blocksize - 1})")
    rows = len(d.counts)
    ticks = sorted({0, rows // 2, rows - 1})
    ax.set_yticks(ticks, [f"{r * d.blocks_per_row}" for r in ticks])
    ax.set_ylabel("absmax block" + (f" (rows of {d.blocks_per_row} blocks)" if d.blocks_per_row > 1 else ""))
    ax.set_title(f"{d.wrong} of {d.judged} elements wrong, {d.blocks} blocks of {d.blocksize}")
    fig.colorbar(image, ax=ax, label=f"wrong elements (of {d.blocks_per_row} per cell)")


def _peaks(fig: Any, d: f.Peaks) -> None:
    ax = fig.subplots()
    n = len(d.losses)
    ax.barh([k + 0.2 for k in range(n)], [v / GIB for v in d.naive], height=0.4, color=COLORS["naive"],
            label="naive (full logits)")
    ok = [c <= d.limit * v for c, v in zip(d.candidate, d.naive)]
    ax.barh([k - 0.2 for k in range(n)], [c / GIB for c in d.candidate], height=0.4,
            color=[COLORS["ok"] if good else COLORS["bad"] for good in ok], label="submission")
    ax.vlines([d.limit * v / GIB for v in d.naive], [k - 0.45 for k in range(n)], [k + 0.45 for k in range(n)],
              colors="black", linestyles="dashed", label=f"{d.limit:.0%} of naive (the puzzle's bar)")
    for k, (c, v) in enumerate(zip(d.candidate, d.naive)):
        ax.annotate(f" {c / GIB:.2f} GiB ({c / v:.2f}x)", (c / GIB, k - 0.2), va="center", fontsize=7)
    ax.set_yticks(range(n), d.losses)
    ax.invert_yaxis()
    ax.set_xlabel("peak memory, GiB")
    ax.set_title(d.where, fontsize=8)
    _legend(fig, ax)


def _errors(fig: Any, d: f.Errors) -> None:
    ax = fig.subplots()
    known = [w for w in d.worst if w is not None and w > 0]
    top = max([*known, 1.0]) * 4
    bottom = min([*known, 1.0]) / 4
    values = [top if w is None else max(w, bottom) for w in d.worst]
    colors = [COLORS["bad"] if (o or w is None or w > 1) else COLORS["ok"] for w, o in zip(d.worst, d.over)]
    ax.barh(range(len(d.labels)), [v - bottom for v in values], color=colors, left=bottom)
    for k, (v, w, o, p) in enumerate(zip(values, d.worst, d.over, d.problems)):
        said = "missing, malformed or not finite" if w is None else f"{w:.3g}"
        ax.annotate(f" {said}; {o} of {p} problems over", (v, k), va="center", fontsize=7)
    ax.axvline(1.0, color="black", linestyle="dashed", label="the allowance (error = allowed)")
    ax.set_xscale("log")
    ax.set_xlim(bottom, top * 8)
    ax.set_yticks(range(len(d.labels)), d.labels)
    ax.invert_yaxis()
    ax.set_xlabel("largest error / its allowance (log scale; above 1 fails)")
    _legend(fig, ax)


def _compilations(fig: Any, d: f.Compilations) -> None:
    ax = fig.subplots()
    xs = range(len(d.counts))
    ax.bar(xs, d.counts, color=COLORS["compiled"], label="compilations")
    ax.set_xticks(list(xs), d.labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("graphs compiled")
    ax.set_xlabel("micro-batch (step, batch x padded length)")
    lengths = ax.twinx()
    lengths.plot(list(xs), d.lengths, marker="o", color=COLORS["naive"], linewidth=1, label="sequence length")
    lengths.set_ylabel("padded length")
    ax.set_title(f"{d.total} compilations over the run (the notebook's limit: {d.limit})")
    _legend(fig, ax, lengths)


def _performance(fig: Any, d: f.Performance) -> None:
    axes = fig.subplots(1, 2 if d.peak_bytes else 1, squeeze=False)[0]
    pairs = [("steady step, ms", [v * 1e3 for v in d.steady_step_s])]
    if d.peak_bytes:
        pairs.append(("peak memory, GiB", [v / GIB for v in d.peak_bytes]))
    for ax, (label, (compiled, eager)) in zip(axes, pairs):
        ax.barh([0, 1], [compiled, eager], color=[COLORS["candidate"], COLORS["naive"]])
        ax.set_yticks([0, 1], ["compiled", "eager"])
        ax.invert_yaxis()
        ax.set_xlabel(label)
        ax.set_title(f"compiled / eager: {compiled / eager:.2f}x" if eager else label)
    if d.compile_overhead_s is not None:
        fig.suptitle(f"compile overhead {d.compile_overhead_s:.0f} s", fontsize=8)


def _deviations(fig: Any, found: f.Deviations) -> None:
    axes = fig.subplots(len(found.quantities), 1, squeeze=False)[:, 0]
    for ax, d in zip(axes, found.quantities):
        xs = list(range(len(d.at)))
        run = [(x, abs(v)) for x, v in zip(xs, d.run) if v is not None and v != 0]
        floor = [(x, abs(v)) for x, v in zip(xs, d.floor_run) if v is not None and v != 0]
        missing = [x for x, v in zip(xs, d.run) if v is None]
        if run:
            ax.plot(*zip(*run), marker="o", color=COLORS["candidate"], label="submission (compiled) vs oracle")
        if floor:
            ax.plot(*zip(*floor), marker="x", linestyle="dotted", color=COLORS["floor"],
                    label="eager math vs oracle (the noise floor run)")
        if missing:
            ax.scatter(missing, [d.tolerance * 10] * len(missing), marker="^", color=COLORS["bad"],
                       label="no finite value")
        if d.floor > 0:  # a floor run that matched the oracle exactly has none to draw on a log scale
            ax.axhline(d.floor, color=COLORS["floor"], linewidth=0.8, label="noise floor (largest of the floor run)")
        ax.axhline(d.tolerance, color=COLORS["bad"], linestyle="dashed", label="tolerance")
        ax.set_yscale("log")
        top = max([d.tolerance, *(v for _, v in run + floor)])
        ax.set_ylim(top=top * (20 if missing else 3))
        ax.set_xticks(xs, d.at, rotation=45, ha="right", fontsize=6)
        ax.set_ylabel(f"|{d.quantity}|")
        ax.set_title(f"{d.quantity}: noise floor {d.floor:.2g}, tolerance {d.tolerance:.2g}", fontsize=8)
    _legend(fig, *axes)


def _legend(fig: Any, *axes: Any) -> None:
    """One legend for the figure, below its axes, of every labelled artist once."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=min(3, len(seen)), fontsize=7)


_DRAW: dict[type, tuple[Callable[[Any, Any], None], Callable[[Any], float]]] = {
    f.KernelTimes: (_kernel_times, lambda d: 1.2 + 0.45 * len(d.weights)),
    f.WrongMap: (_wrong_map, lambda d: 4.0),
    f.Peaks: (_peaks, lambda d: 1.4 + 0.6 * len(d.losses)),
    f.Errors: (_errors, lambda d: 1.0 + 0.3 * len(d.labels)),
    f.Compilations: (_compilations, lambda d: 3.6),
    f.Performance: (_performance, lambda d: 1.8),
    f.Deviations: (_deviations, lambda d: 2.6 * len(d.quantities)),
}


def svg(figure: f.Figure) -> str:
    """`figure`'s data drawn as an inline `<svg>` element (its ids salted with the figure's key)."""
    import matplotlib
    from matplotlib.figure import Figure

    draw, height = _DRAW[type(figure.data)]
    out = io.StringIO()
    with matplotlib.rc_context({**RC, "svg.hashsalt": figure.key}):
        fig = Figure(figsize=(WIDTH_IN, height(figure.data)), layout="constrained")
        draw(fig, figure.data)
        fig.savefig(out, format="svg", metadata={"Date": None})
    text = re.sub(r"^.*?(?=<svg)", "", out.getvalue(), count=1, flags=re.S)
    # matplotlib also names every group (figure_1, axes_1, ...), alike in every picture: only the ids that something
    # refers to (salted) are kept, so that a page's ids stay unique.
    used = set(re.findall(r'(?:url\(#|href="#)([^)"]+)', text))
    return re.sub(r'\sid="([^"]+)"', lambda m: m.group(0) if m.group(1) in used else "", text)
