"""The drift figure of `nfbench diagnose`, checked by what it draws."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from nfbench.benchmarks.report.diagnostic_plots import drift_figure, plot_drift


def _table() -> pd.DataFrame:
    """A learning model (both groups move) and a frozen one (nothing moves)."""
    rows = [("learner", "flow", 2, 1e-3), ("learner", "flow", 3, 5e-4),
            ("learner", "mus", 2, 0.0), ("learner", "mus", 3, 2e-2),
            ("frozen", "flow", 2, 0.0), ("frozen", "flow", 3, 0.0)]
    return pd.DataFrame(rows, columns=["model", "group", "to_task", "rms_change"])


def test_drift_panels_integer_transitions_and_all_zero_in_words(tmp_path: Path) -> None:
    fig = drift_figure(_table())
    heat, frozen_heat, lines, frozen_lines = fig.axes[0], fig.axes[1], fig.axes[2], fig.axes[3]
    assert heat.get_title() == "learner: log10 RMS change per group"
    assert [t.get_text() for t in heat.get_xticklabels()] == ["1→2", "2→3"]
    assert [t.get_text() for t in heat.get_yticklabels()] == ["flow", "mus"]
    assert list(lines.get_xticks()) == [2, 3]  # task transitions, never 2.5
    assert [t.get_text() for t in lines.get_xticklabels()] == ["1→2", "2→3"]
    assert lines.get_yscale() == "symlog" and lines.get_ylim()[0] == 0  # no negative RMS axis
    assert sorted(ln.get_label() for ln in lines.lines) == ["flow", "mus"]
    for ax in (frozen_heat, frozen_lines):  # all zero: a sentence, no axis around 0
        assert [t.get_text() for t in ax.texts] == [
            "frozen: no parameter changed\n(every RMS change is 0)"]
        assert not ax.lines and not ax.images and ax.get_yscale() == "linear"
    plt.close(fig)
    assert plot_drift(_table(), tmp_path / "drift.png").is_file()
