"""The audit plots as a careful engineer draws them (issue 14 item 9).

Before: the throughput plot's cycle axis read 1.0, 1.2, ... 2.0; the predicted-vs-actual
plot ran 0-120 s for 4-6 s values (the budget line set the scale) and left out the
prediction go/no-go decided on; the dashboard's right plot did the same.  Real matplotlib
figures drawn from a cycles table; nothing here depends on ESXi.
"""

from __future__ import annotations

import pandas as pd

from vmigrate_lib.audit import plots


def _cycles() -> pd.DataFrame:
    return pd.DataFrame({
        "cycle": [1, 2], "kind": ["seed", "delta"], "bytes_changed": [64 << 20, 2 << 20],
        "duration_s": [3.0, 0.5], "throughput_Bps": [40e6, 35e6],
        "predicted_downtime_s": [6.1, 5.2], "budget_s": [120.0, 120.0],
    })


def test_cycle_ticks_are_whole_numbers() -> None:
    ax = plots.throughput(_cycles()).axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_downtime_plot_scaled_to_its_data_with_the_go_no_go_prediction() -> None:
    ax = plots.downtime(_cycles(), actual=4.6, go_no_go=5.0).axes[0]
    assert ax.get_ylim()[1] < 10  # the data run to 6.1 s, not to the 120 s budget
    labels = ax.get_legend_handles_labels()[1]
    assert "go/no-go prediction 5.0 s" in labels
    assert "measured at cutover 4.6 s" in labels
    assert "budget 120 s (above this scale)" in labels
    # a budget on the data's scale is drawn and the axis reaches it
    near = plots.downtime(_cycles().assign(budget_s=8.0), actual=4.6).axes[0]
    assert "budget 8 s" in near.get_legend_handles_labels()[1] and near.get_ylim()[1] >= 8


def test_dashboard_prediction_plot_scaled_to_its_data() -> None:
    fig = plots.dashboard_figure(_cycles(), budget=120.0)
    right = fig.axes[1]
    assert right.get_title() == "Predicted downtime vs budget"
    assert right.get_ylim()[1] < 10
