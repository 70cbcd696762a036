"""Figures a person would rather look at than read: mouth openness of prediction against
ground truth (distribution and one clip over time). Built with `matplotlib.figure.Figure`
(no pyplot), so library code never switches a notebook's backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unitaf_data.face import channel_index
from unitaf_model.evaluation import metrics


def openness_histogram(evaluation, system: str):
    """Mouth closure (rig openness, or JawOpen) of `system` and ground truth, with the
    fitted interval the mouth-state loss normalises by."""
    from matplotlib.figure import Figure

    from unitaf_model.evaluation.evaluate import GROUND_TRUTH

    run = evaluation.runs[system]
    channels = evaluation.dataset.info.channels
    values = {name: np.concatenate([metrics.lip_closure(f, channels, run.rig)
                                    for f in evaluation.faces[name]])
              for name in (GROUND_TRUTH, system)}
    figure = Figure(figsize=(7, 3.5))
    axis = figure.subplots()
    bins = np.linspace(min(v.min() for v in values.values()),
                       max(v.max() for v in values.values()), 60)
    for (name, data), colour in zip(values.items(), ("0.3", "tab:orange"), strict=True):
        axis.hist(data, bins=bins, alpha=0.55, density=True, label=name, color=colour)
    interval = run.info.mouth_interval
    if interval is not None and run.rig is not None:
        for edge in (interval["low"], interval["high"]):
            axis.axvline(edge, color="tab:red", linestyle="--", linewidth=1)
        axis.text(interval["high"], axis.get_ylim()[1] * 0.95, " fitted interval",
                  color="tab:red", fontsize=8, va="top")
    axis.set_xlabel("mouth openness (rig units)" if run.rig is not None else "JawOpen")
    axis.set_ylabel("density")
    axis.set_title(f"mouth openness on {evaluation.split}: {system} vs ground truth",
                   fontsize=9)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def clip_curves(evaluation, system: str, index: int = 0):
    """One clip's JawOpen and mouth openness over time, prediction against ground truth,
    bilabial intervals shaded."""
    from matplotlib.figure import Figure

    from unitaf_model.evaluation.evaluate import GROUND_TRUTH

    run, truth = evaluation.runs[system], evaluation.truths[index]
    channels, fps = evaluation.dataset.info.channels, evaluation.dataset.info.fps
    rows = [("JawOpen", lambda f: f[:, channel_index(channels, "JawOpen")])]
    if run.rig is not None:
        rows.append(("mouth openness", lambda f: run.rig.mouth_openness(f)))
    figure = Figure(figsize=(10, 2.3 * len(rows) + 0.4))
    axes = np.atleast_1d(figure.subplots(len(rows), 1, sharex=True))
    time = (np.arange(len(truth.face)) + 0.5) / fps
    for axis, (label, curve) in zip(axes, rows, strict=True):
        for name, colour in ((GROUND_TRUTH, "0.2"), (system, "tab:orange")):
            axis.plot(time, curve(evaluation.faces[name][index]), label=name, color=colour)
        for start, end in truth.bilabials:
            axis.axvspan(start, end, color="tab:blue", alpha=0.15)
        axis.set_ylabel(label)
    axes[0].set_title(f"{truth.key}: shaded = /p b m/ intervals", fontsize=9, loc="left")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[-1].set_xlabel("seconds")
    figure.tight_layout()
    return figure


def evaluation_plots(evaluation, system: str, out: Path) -> dict[str, Path]:
    paths = {"openness_histogram": out / "openness_histogram.png",
             "clip_curves": out / "clip_curves.png"}
    openness_histogram(evaluation, system).savefig(paths["openness_histogram"], dpi=110)
    clip_curves(evaluation, system).savefig(paths["clip_curves"], dpi=110)
    return paths
