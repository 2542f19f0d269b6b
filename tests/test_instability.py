"""The plastic instability found and tested (issue #9, item 3): a runaway trace is flagged against task 1's scale,
and a collapsed task is named with the trace it was consolidated with."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dhclib.paper.report import RUNAWAY_FACTOR, collapsed_tasks, eta_trajectory, task_states, trace_runaway


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


def test_etas_course_beside_figure_3():
    """Task 1's largest and last eta, the extremes after task 1 and the last eta, read in step order."""
    t = pd.DataFrame({"step": [3, 0, 1, 2, 4, 5], "task": [1, 0, 0, 0, 1, 1],
                      "eta": [-0.02, 0.001, 0.024, 0.010, 0.03, 0.005], "hebb_norm": 1.0})
    assert eta_trajectory(t) == {"eta_task1_max": 0.024, "eta_task1_end": 0.010, "eta_later_max": 0.03,
                                 "eta_later_min": -0.02, "eta_end": 0.005}
    one_task = eta_trajectory(t[t["task"] == 0])
    assert one_task["eta_end"] == 0.010 and np.isnan(one_task["eta_later_min"])
    # with the run's tasks: task 1 ran 3 epochs and early stopping restored epoch 2, whose last step had eta 0.024
    t["epoch"] = [2, 1, 2, 3, 1, 2]
    tasks = pd.DataFrame({"task": [1, 0], "epochs": [2, 3], "best_epoch": [1, 2]})
    both = eta_trajectory(t, tasks)
    assert both["task1_epochs"] == 3 and both["eta_task1_restored"] == 0.024 and both["eta_task1_end"] == 0.010


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


def test_task_states_cover_every_task_and_read_the_recorded_mechanism():
    """Every task but the last, forgotten or not; the mechanism a run recorded at each restored epoch where it
    did (NaN for an older run); a run without a trace has no runaway to count."""
    R = np.array([[0.95, np.nan, np.nan], [0.90, 0.96, np.nan], [0.30, 0.94, 0.97]])
    t = _traces({0: [10, 20, 20, 900], 1: [20, 30, 40, 50], 2: [20, 20, 20, 20]})
    tasks = pd.DataFrame({"task": [0, 1, 2], "best_epoch": [2, 1, 2], "plastic_ratio": [0.5, 4.0, 1.0],
                          "alpha_norm": [3.0, 3.5, 4.0], "penalty_stiffness": [0.0, 0.02, 0.03]})
    s = task_states(R, t, tasks)
    assert s["task"].tolist() == [1, 2] and s["forgotten"].tolist() == [True, False]
    assert s["runaway_at_restore"].tolist() == [True, False]
    assert s["plastic_ratio"].tolist() == [0.5, 4.0] and s["penalty_stiffness"].tolist() == [0.0, 0.02]
    older = task_states(R, t, tasks[["task", "best_epoch"]])
    assert older["plastic_ratio"].isna().all() and older["forgotten"].tolist() == [True, False]
    no_trace = task_states(R, pd.DataFrame({"step": [0], "task": [0], "epoch": [1], "loss": [1.0]}), tasks)
    assert not no_trace["runaway_at_restore"].any() and no_trace["hebb_norm_at_restored_epoch"].isna().all()


def test_the_mechanism_table_counts_tasks_per_row(tmp_path):
    """REPORT.md's and the README's mechanism table from stored runs: a DHP + MAS run that forgot task 1 at a
    runaway restore, and its MAS baseline (no trace: its trace columns are dashes)."""
    from dhclib.paper.findings import mechanism_table as _mechanism_table
    from dhclib.paper.report_md import report_tables
    from dhclib.runs.config import resolve_config
    from dhclib.runs.store import RunResult, result_path, write_atomic

    R = np.array([[0.95, np.nan, np.nan], [0.90, 0.96, np.nan], [0.30, 0.94, 0.97]])
    t = _traces({0: [10, 20, 20, 900], 1: [20, 30, 40, 50], 2: [20, 20, 20, 20]}).assign(alpha_norm=2.0)
    recorded = pd.DataFrame({"task": [0, 1, 2], "best_epoch": [2, 1, 2], "plastic_ratio": [0.5, 4.0, 1.0],
                             "alpha_norm": [3.0, 3.5, 4.0], "penalty_stiffness": [0.0, 0.02, 0.03]})
    for method, traces, tasks in (("dhp+mas", t, recorded), ("mas", t.drop(columns=["hebb_norm", "alpha_norm"]),
                                                              recorded[["task", "best_epoch"]])):
        cfg = resolve_config("permuted_mnist", method, 0, "paper", "cpu", n_tasks=3)
        r = RunResult(config=dict(cfg.to_dict(), key=cfg.key()), R=R, traces=traces, epochs=pd.DataFrame(),
                      tasks=tasks, wall_time=1.0, versions={}, device_name="cpu: test")
        write_atomic(result_path(tmp_path, cfg), r.to_json())
    text = _mechanism_table(report_tables(tmp_path))
    assert "| Permuted MNIST | dhp+mas [n_tasks=3] | 1 | 95.5 | 1 | 1 | 0 | 1 | 4.00 | 2.25; 4.00 | 0.02 |" in text
    assert "| Permuted MNIST | mas [n_tasks=3] | 1 | 95.5 | — | — | — | 1 | — | — | — |" in text


# --- figures a reader can lay beside the paper's (issue #9, item 6) ------------------------------------------
def _curves() -> pd.DataFrame:
    rows = [{"method": m, "seed": s, "tasks_learned": t, "avg_acc": a - 0.01 * t}
            for m, a in (("finetune", 0.95), ("dhp", 0.96), ("ewc", 0.97)) for s in (0, 1) for t in (1, 2, 3)]
    return pd.DataFrame(rows)


def test_accuracy_curves_mark_the_papers_values_and_name_the_diverged():
    from dhclib.paper import plots

    fig = plots.accuracy_curves(_curves(), "t", paper={"finetune": 0.90, "dhp": 0.92, "ewc": float("nan")},
                                diverged=["dhp+ewc"])
    ax = fig.axes[0]
    stars = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
    assert len(stars) == 2  # finetune and dhp; ewc's paper value is NaN
    assert sorted(round(float(ln.get_ydata()[0]), 6) for ln in stars) == [90.0, 92.0]
    assert all(float(ln.get_xdata()[0]) > 3 for ln in stars)  # just right of the last task, not on the curve
    assert {ln.get_markeredgecolor() for ln in stars} == {plots.method_color("finetune")}  # one hue per regulariser
    notes = [t.get_text() for t in ax.texts]
    assert notes == ["diverged, not shown: DHP Softmax + Online EWC"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "paper, final average (Table 1)" in legend
    solid = {ln.get_label(): ln.get_linestyle() for ln in ax.get_lines() if ln.get_marker() != "*"}
    assert solid["DHP Softmax (93.00%)"] == "-" and solid["Finetune (92.00%)"] == "--"  # 0.96 - 0.03, 0.95 - 0.03


def test_first_and_latest_has_one_named_tick_per_task():
    from dhclib.paper import plots

    frame = pd.DataFrame({"method": "dhp", "seed": 0, "tasks_learned": [1, 2, 3], "first_task": [0.9, 0.8, 0.7],
                          "latest_task": [0.9, 0.9, 0.9]})
    fig = plots.first_and_latest(frame, "t", task_names=["MNIST", "notMNIST", "FashionMNIST"])
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == [1, 2, 3]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1\nMNIST", "2\nnotMNIST", "3\nFashionMNIST"]


def test_not_shown_names_only_methods_with_no_run_at_all():
    from dhclib.paper import report

    df = pd.DataFrame({"method": ["finetune", "dhp", "ewc"]})
    diverged = pd.DataFrame({"method": ["dhp+ewc", "ewc", "dhp+ewc", "mas"], "seed": [0, 1, 1, 0]})
    # ewc has a run (one seed diverged): it is drawn; dhp+ewc and mas have none: named, in Table 1's order
    assert report.not_shown(df, diverged) == ["dhp+ewc", "mas"]
    assert report.not_shown(df, pd.DataFrame(columns=["method", "seed"])) == []


def test_final_averages_are_table1s_column_as_fractions():
    from dhclib import paper

    marks = paper.final_averages("imbalanced_permuted_mnist")
    assert marks["ewc"] == pytest.approx(0.8718) and marks["dhp+mas"] == pytest.approx(0.8880)
    assert set(marks) == set(paper.table1("imbalanced_permuted_mnist")["method"])


def test_a_notebook_shows_the_mechanism_and_each_settings_effect_for_exactly_its_runs(tmp_path, capsys):
    """Notebooks 01/02's collapse section: `notebook.settings` pairs a labelled row with its method in the paper's
    configuration, and `notebook.mechanism` reads back exactly the notebook's runs (a stored run of another seed or
    benchmark is left out) and counts their tasks, in Table 1's order, as REPORT.md does."""
    from dhclib.paper import notebook
    from dhclib.runs.config import resolve_config
    from dhclib.runs.store import RunResult, result_path, write_atomic

    R = np.array([[0.95, np.nan, np.nan], [0.90, 0.96, np.nan], [0.30, 0.94, 0.97]])
    t = _traces({0: [10, 20, 20, 900], 1: [20, 30, 40, 50], 2: [20, 20, 20, 20]}).assign(alpha_norm=2.0)
    tasks = pd.DataFrame({"task": [0, 1, 2], "best_epoch": [2, 1, 2]})
    store = tmp_path / "paper"
    for bench, method, seed, extra, shift in (("permuted_mnist", "dhp+mas", 0, {}, 0.0),
                                              ("permuted_mnist", "dhp+mas", 1, {}, 0.02),
                                              ("permuted_mnist", "dhp+mas", 2, {}, 0.0),  # not the notebook's
                                              ("split_mnist", "dhp+mas", 0, {}, 0.0),  # nor this
                                              ("permuted_mnist", "dhp+mas", 0, {"importance_logits": "slow"}, 0.01),
                                              ("permuted_mnist", "dhp+mas", 1, {"importance_logits": "slow"}, 0.05)):
        cfg = resolve_config(bench, method, seed, "paper", "cpu", **extra)
        r = RunResult(config=dict(cfg.to_dict(), key=cfg.key()), R=R + shift * np.tril(np.ones_like(R)),
                      traces=t, epochs=pd.DataFrame(), tasks=tasks, wall_time=1.0, versions={},
                      device_name="cpu: test", purpose={"variant": extra} if extra else {})
        write_atomic(result_path(store, cfg), r.to_json())
    variants = [{"methods": ["dhp+mas"], "overrides": {"importance_logits": "slow"}}]
    df, _ = notebook.train("permuted_mnist", ["dhp+mas"], 2, "paper", "cpu", store, tmp_path / "nb", variants,
                           missing="skip")
    effects = notebook.settings(df, tmp_path / "nb")
    assert list(effects["variant"]) == ["dhp+mas [importance_logits=slow]"] and int(effects["pairs"].iat[0]) == 2
    assert effects["avg_acc_gain"].iat[0] == pytest.approx((0.01 - 0.0 + 0.05 - 0.02) / 2)
    m = notebook.mechanism(df, "permuted_mnist", store, tmp_path / "nb")
    assert list(m["method"]) == ["dhp+mas", "dhp+mas [importance_logits=slow]"] and list(m["runs"]) == [2, 2]
    assert list(m["forgotten"]) == [2, 2] and list(m["runaway_forgotten"]) == [2, 2]  # task 1, at a runaway restore
    shown = capsys.readouterr().out
    assert "accuracy right after learning a task (%)" in shown and (tmp_path / "nb" / "mechanism.csv").is_file()
    only_main, _ = notebook.train("permuted_mnist", ["dhp+mas"], 2, "paper", "cpu", store, tmp_path / "nb",
                                  [], missing="skip")
    assert notebook.settings(only_main, tmp_path / "nb").empty
    assert "nothing to pair: no labelled row" in capsys.readouterr().out


def test_each_labelled_setting_is_set_beside_etas_course_of_its_method_on_the_seeds_both_have(tmp_path):
    """REPORT.md's "What each labelled setting does to η's course" (issue #27, E2: early stopping on the validation
    loss): `dhp [select_metric=loss]` against `dhp` over the seeds both have only (seed 0: seed 1 has only `dhp`,
    seed 2 only the labelled row), each cell labelled / paper's configuration; a run's trace that ran away is
    counted; a Table 1 row is never set against itself."""
    from dhclib.paper.findings import course_table
    from dhclib.paper.report_md import report_tables
    from dhclib.runs.config import resolve_config
    from dhclib.runs.store import RunResult, result_path, write_atomic

    n = 10
    R = np.where(np.tril(np.ones((n, n))) > 0, 0.9, np.nan)

    def store(seed: int, restored: float, epochs: int, negative: bool, hebb_later: float, **overrides) -> None:
        # task 1: one traced step per epoch, eta 0.02 at epoch 1, `restored` at epoch 2 (the one restored), then
        # 0.03; every later task two steps, the first with eta < 0 where `negative`
        rows = [{"task": 0, "epoch": e, "eta": {1: 0.02, 2: restored}.get(e, 0.03), "hebb_norm": 10.0}
                for e in range(1, epochs + 1)]
        rows += [{"task": t, "epoch": 1, "eta": eta, "hebb_norm": hebb_later} for t in range(1, n)
                 for eta in ((-0.01 if negative else 0.01), 0.01)]
        traces = pd.DataFrame(rows).assign(step=range(len(rows)))
        tasks = pd.DataFrame({"task": range(n), "epochs": [epochs] + [1] * (n - 1), "best_epoch": [2] + [1] * (n - 1)})
        cfg = resolve_config("permuted_mnist", "dhp", seed, "paper", "cpu", **overrides)
        r = RunResult(config=dict(cfg.to_dict(), key=cfg.key()), R=R, traces=traces, epochs=pd.DataFrame(),
                      tasks=tasks, wall_time=1.0, versions={}, device_name="cpu: test")
        write_atomic(result_path(tmp_path, cfg), r.to_json())

    store(0, restored=0.002, epochs=5, negative=True, hebb_later=500.0)  # ran away: 500 > 10 x 10
    store(1, restored=0.004, epochs=7, negative=True, hebb_later=500.0)
    store(0, restored=0.02, epochs=3, negative=False, hebb_later=20.0, select_metric="loss")
    store(2, restored=0.5, epochs=9, negative=True, hebb_later=500.0, select_metric="loss")
    tables = report_tables(tmp_path)
    course = tables["course"]
    assert course[["variant", "method", "pairs", "seeds"]].values.tolist() == [
        ["dhp [select_metric=loss]", "dhp", 1, "0"]]
    text = course_table(tables)
    assert ("| Permuted MNIST | dhp [select_metric=loss] | dhp | 0 | 3.0 / 5.0 | 0.0200 / 0.0020 | 0.0100 / −0.0100 "
            "| 0.000 / 0.500 | 0 / 1 of 1 |") in text
    assert course_table({"course": pd.DataFrame()}) == ""


def test_etas_course_per_initial_eta_takes_table4s_runs_and_table1s_of_the_same_seeds(tmp_path):
    """η's course per initial η of Table 4 (App. A.5; is the start forgotten once task 1 is learned?): each value's
    runs, η = 0.001 being Table 1's DHP Softmax runs of the seeds the sweep has only (seed 1 has no sweep run), and
    no labelled row (a clamp) among them."""
    from dhclib.paper.findings import eta_course_table
    from dhclib.paper.report_md import report_tables
    from dhclib.runs.config import resolve_config
    from dhclib.runs.store import RunResult, result_path, write_atomic

    n = 3
    R = np.where(np.tril(np.ones((n, n))) > 0, 0.9, np.nan)

    def store(seed: int, peak: float, later: float, **overrides) -> None:
        # task 1: eta rises to `peak` at epoch 2 (the one restored), then 0.01; tasks 2-3: `later`, then 0.01
        rows = [{"task": 0, "epoch": e, "eta": {2: peak}.get(e, 0.01), "hebb_norm": 10.0} for e in (1, 2, 3)]
        rows += [{"task": t, "epoch": 1, "eta": eta, "hebb_norm": 10.0} for t in (1, 2) for eta in (later, 0.01)]
        traces = pd.DataFrame(rows).assign(step=range(len(rows)))
        tasks = pd.DataFrame({"task": range(n), "epochs": [3, 1, 1], "best_epoch": [2, 1, 1]})
        cfg = resolve_config("permuted_mnist", "dhp", seed, "paper", "cpu", **overrides)
        r = RunResult(config=dict(cfg.to_dict(), key=cfg.key()), R=R, traces=traces, epochs=pd.DataFrame(),
                      tasks=tasks, wall_time=1.0, versions={}, device_name="cpu: test")
        write_atomic(result_path(tmp_path, cfg), r.to_json())

    store(0, peak=0.03, later=-0.02)
    store(1, peak=0.05, later=-0.04)  # no sweep run of seed 1: not Table 4's
    store(0, peak=0.12, later=0.02, eta_init=0.1)
    store(2, peak=0.10, later=-0.02, eta_init=0.1)
    store(0, peak=0.0, later=0.0, eta_clamp=True)
    c = report_tables(tmp_path)["eta_course"].set_index("eta_init")
    assert c["runs"].to_dict() == {0.1: 2, 0.001: 1}
    assert c.loc[0.1, "eta_task1_max"] == pytest.approx(0.11) and c.loc[0.1, "eta_later_min"] == pytest.approx(-0.005)
    assert c.loc[0.001, ["eta_task1_max", "eta_task1_restored", "eta_later_min", "eta_negative_share"]].tolist() == \
        pytest.approx([0.03, 0.03, -0.02, 0.5])
    assert c.loc[0.1, "eta_negative_share"] == pytest.approx(0.25)  # seed 0: none; seed 2: half the steps
    text = eta_course_table(report_tables(tmp_path))
    assert "| Permuted MNIST | 0.1 | 2 | 0.1100 | 0.1100 | −0.0050 | 0.250 | 0 of 2 |" in text
    assert "| Permuted MNIST | 0.001 | 1 | 0.0300 | 0.0300 | −0.0200 | 0.500 | 0 of 1 |" in text
    assert eta_course_table({"eta_course": pd.DataFrame()}) == ""
    # notebook 05's path: exactly the sweep's runs (run_grid's frame), the same numbers as the report's
    import dhclib
    from dhclib.paper import notebook

    sweep = dhclib.run_grid("permuted_mnist", "dhp", "eta_init", [0.1, 0.001], "0-2", "paper", "cpu",
                            out_dir=tmp_path, missing="skip", progress=False)
    paired, course = notebook.eta_effects(sweep, tmp_path, tmp_path / "nb")
    assert paired[["eta_init", "pairs"]].values.tolist() == [[0.1, 1]]
    assert course.set_index("eta_init")["runs"].to_dict() == {0.1: 2, 0.001: 1}
    assert (tmp_path / "nb" / "table4_paired.csv").is_file() and (tmp_path / "nb" / "eta_course.csv").is_file()
