"""Figures a person would rather look at than read: mouth openness of prediction against
ground truth (distribution and one clip over time), drawn from plain arrays (the evaluation
computes them: `evaluate.openness_figure`, `evaluate.clip_figure`). Built with
`matplotlib.figure.Figure` (no pyplot), so library code never switches a notebook's backend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def openness_histogram(values: dict[str, np.ndarray], interval: dict[str, float] | None,
                       unit: str, title: str):
    """Distributions of mouth closure per system (`values`: name -> 1-D array; the first is
    drawn grey, the second orange), with the fitted `interval` (`low`, `high`) the
    mouth-state loss normalises by when given."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.5))
    axis = figure.subplots()
    bins = np.linspace(min(v.min() for v in values.values()),
                       max(v.max() for v in values.values()), 60)
    for (name, data), colour in zip(values.items(), ("0.3", "tab:orange"), strict=True):
        axis.hist(data, bins=bins, alpha=0.55, density=True, label=name, color=colour)
    if interval is not None:
        for edge in (interval["low"], interval["high"]):
            axis.axvline(edge, color="tab:red", linestyle="--", linewidth=1)
        axis.text(interval["high"], axis.get_ylim()[1] * 0.95, " fitted interval",
                  color="tab:red", fontsize=8, va="top")
    axis.set_xlabel(unit)
    axis.set_ylabel("density")
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def clip_curves(rows: dict[str, dict[str, np.ndarray]], fps: float,
                shaded: Sequence[tuple[float, float]], title: str):
    """One clip's curves over time, one panel per row (`rows`: label -> {system: (T,)
    curve}; the first system grey, the second orange), `shaded` intervals in seconds."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 2.3 * len(rows) + 0.4))
    axes = np.atleast_1d(figure.subplots(len(rows), 1, sharex=True))
    for axis, (label, curves) in zip(axes, rows.items(), strict=True):
        for (name, curve), colour in zip(curves.items(), ("0.2", "tab:orange"), strict=True):
            axis.plot((np.arange(len(curve)) + 0.5) / fps, curve, label=name, color=colour)
        for start, end in shaded:
            axis.axvspan(start, end, color="tab:blue", alpha=0.15)
        axis.set_ylabel(label)
    axes[0].set_title(title, fontsize=9, loc="left")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[-1].set_xlabel("seconds")
    figure.tight_layout()
    return figure
