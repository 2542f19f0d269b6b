"""The plastic instability found and tested (issue #9, item 3): a runaway trace is flagged against task 1's scale,
and a collapsed task is named with the trace it was consolidated with."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dhclib.paper.report import RUNAWAY_FACTOR, collapsed_tasks, trace_runaway


def _traces(hebb_by_task: dict[int, list[float]], eta: float = 0.01) -> pd.DataFrame:
    rows, step = [], 0
    for task, values in hebb_by_task.items():
        for i, h in enumerate(values):
            rows.append({"step": step, "task": task, "epoch": 1 + i // 2, "eta": eta if i % 3 else -eta, "hebb_norm": h})
            step += 1
    return pd.DataFrame(rows)


def test_a_trace_that_grows_past_the_factor_runs_away():
    t = _traces({0: [10, 20, 30, 20], 1: [25, 40, 60, 30], 2: [30, 500, 2000, 40]})
    per = trace_runaway(t).set_index("task")
    assert per.loc[1, "task1_median"] == 20.0
    assert per["runaway"].tolist() == [False, False, True]  # 60 / 20 = 3 < 10; 2000 / 20 = 100 > 10
    assert per.loc[3, "ratio"] == 100.0 and per.loc[3, "hebb_norm_max"] == 2000
    assert per.loc[2, "eta_negative_share"] == 0.5 and per.loc[2, "eta_min"] == -0.01
    just_below = _traces({0: [10, 10], 1: [10 * RUNAWAY_FACTOR, 10]})
    assert not trace_runaway(just_below)["runaway"].any()  # at the factor itself: not a runaway


def test_a_collapsed_task_is_named_with_its_trace_at_the_restored_epoch():
    R = np.array([[0.95, np.nan, np.nan], [0.90, 0.96, np.nan], [0.30, 0.94, 0.97]])
    t = _traces({0: [10, 20, 20, 900], 1: [20, 30, 40, 50], 2: [20, 20, 20, 20]})
    tasks = pd.DataFrame({"task": [0, 1, 2], "best_epoch": [2, 1, 2]})
    c = collapsed_tasks(R, t, tasks)
    assert c["task"].tolist() == [1]  # 0.95 -> 0.30; task 2 lost only 2 points
    # the restored epoch of task 1 is its second: its last traced value there is 900, 45x task 1's median (20)
    assert c.loc[0, "hebb_norm_at_restored_epoch"] == 900 and bool(c.loc[0, "runaway_at_restore"])
    tasks_early = tasks.assign(best_epoch=[1, 1, 2])
    c = collapsed_tasks(R, t, tasks_early)
    assert c.loc[0, "hebb_norm_at_restored_epoch"] == 20 and not c.loc[0, "runaway_at_restore"]
    assert collapsed_tasks(R, t, tasks, drop=0.7).empty
