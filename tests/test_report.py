"""dhclib.paper, dhclib.paper.report and dhclib.paper.plots: the paper's numbers, the comparison tables, the figures."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from dhclib import paper, plots, report  # noqa: E402
from dhclib.runs.outputs import output_dirs, save_table  # noqa: E402


def tidy_from(R_by_run: dict[tuple[str, int], np.ndarray], benchmark: str = "split_mnist") -> pd.DataFrame:
    """A tidy frame as run_many returns it, from hand-written R matrices keyed by (method, seed)."""
    rows = []
    for (method, seed), R in R_by_run.items():
        for t in range(R.shape[0]):
            for i in range(t + 1):
                rows.append((benchmark, method, seed, "quick", f"k{method}{seed}", t, i, R[t, i]))
    return pd.DataFrame(rows, columns=["benchmark", "method", "seed", "profile", "config_key", "after_task", "task",
                                       "accuracy"])


R_A = np.array([[0.9, np.nan], [0.7, 0.8]])  # avg 0.75, BWT -0.2
R_B = np.array([[0.9, np.nan], [0.8, 0.9]])  # avg 0.85, BWT -0.1
R_C = np.array([[1.0, np.nan], [0.9, 0.9]])  # avg 0.90, BWT -0.1
R_D = np.array([[1.0, np.nan], [1.0, 0.9]])  # avg 0.95, BWT  0.0


def test_paper_tables_are_the_papers_numbers():
    """docs/method.md (results): Table 1 (as fractions), Table 4, Figure 8; spot values and shapes."""
    t1 = paper.table1()
    assert len(t1) == 32 and set(t1["benchmark"]) == {"permuted_mnist", "imbalanced_permuted_mnist", "split_mnist",
                                                       "vision_mixture"}
    row = t1[(t1["method"] == "dhp+mas") & (t1["benchmark"] == "permuted_mnist")].iloc[0]
    assert row["avg_acc"] == pytest.approx(0.8953) and row["bwt"] == pytest.approx(-0.06)
    assert list(paper.table1("split_mnist")["method"])[:2] == ["finetune", "dhp"]
    t4 = paper.table4()
    assert t4.loc[(t4["benchmark"] == "imbalanced_permuted_mnist") & (t4["eta_init"] == 0.001), "avg_acc"].item() \
        == pytest.approx(0.8085)
    assert paper.figure8().set_index("method").loc["scratch", "avg_acc"] == pytest.approx(0.6483)
    with pytest.raises(ValueError, match="no 'cifar'"):
        paper.table1("cifar")


def test_table1_comparison_means_sems_and_differences():
    """Mean and SEM over seeds of average accuracy and BWT, beside the paper's, with ours − paper."""
    df = tidy_from({("finetune", 0): R_A, ("finetune", 1): R_B, ("dhp", 0): R_C})
    t = report.table1_comparison(df, "split_mnist").set_index("method")
    assert t.loc["finetune", "trials"] == 2 and t.loc["dhp", "trials"] == 1 and t.loc["si", "trials"] == 0
    assert t.loc["finetune", "avg_acc_mean"] == pytest.approx(0.80)
    assert t.loc["finetune", "avg_acc_sem"] == pytest.approx(0.05)  # std(0.75, 0.85) = 0.0707 / sqrt(2)
    assert t.loc["finetune", "bwt_mean"] == pytest.approx(-0.15)
    assert t.loc["finetune", "avg_acc_diff"] == pytest.approx(0.80 - 0.9043)
    assert t.loc["dhp", "bwt_diff"] == pytest.approx(-0.1 - (-0.02))
    assert math.isnan(t.loc["si", "avg_acc_mean"])
    assert list(t.index) == ["finetune", "dhp", "si", "dhp+si", "ewc", "dhp+ewc", "mas", "dhp+mas"]


def test_paired_tests_welch_p_matches_the_formula():
    """The unpaired comparison beside the paired test: Welch's t = (mean_b − mean_a) / sqrt(var_a/n_a + var_b/n_b)
    (sample variances) over the seeds both sides have, p two-sided with the Welch–Satterthwaite degrees of freedom;
    NaN with fewer than two pairs."""
    df = tidy_from({("finetune", 0): R_A, ("finetune", 1): R_B, ("finetune", 2): R_A,
                    ("dhp", 0): R_C, ("dhp", 1): R_D, ("si", 0): R_A})
    w = report.paired_tests(df).set_index("baseline")
    a, b = np.array([0.75, 0.85]), np.array([0.90, 0.95])  # seeds 0 and 1: the pairs
    va, vb = a.var(ddof=1) / 2, b.var(ddof=1) / 2
    t = (b.mean() - a.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 + vb ** 2)
    assert w.loc["finetune", "avg_acc_welch_p"] == pytest.approx(2 * stats.t.sf(abs(t), dof))
    assert w.loc["finetune", "avg_acc_gain"] == pytest.approx(b.mean() - a.mean()) and w.loc["finetune", "pairs"] == 2
    assert math.isnan(w.loc["si", "avg_acc_welch_p"]) and w.loc["si", "pairs"] == 0
    two = pd.concat([df, tidy_from({("dhp", 0): R_C}, "permuted_mnist")])
    with pytest.raises(ValueError, match="one benchmark"):
        report.paired_tests(two)


def test_curves_first_and_latest_and_run_matrix():
    """The curve is the mean of each row's seen tasks; first/latest are R[T, 0] and R[T, T]."""
    df = tidy_from({("ewc", 0): R_A, ("ewc", 1): R_B})
    c = report.curves(df)
    assert c[(c["seed"] == 0)]["avg_acc"].tolist() == pytest.approx([0.9, 0.75])
    fl = report.first_and_latest(df)
    row = fl[(fl["seed"] == 1) & (fl["tasks_learned"] == 2)].iloc[0]
    assert (row["first_task"], row["latest_task"]) == pytest.approx((0.8, 0.9))
    np.testing.assert_array_equal(report.run_matrix(df, "ewc"), R_A)
    with pytest.raises(ValueError, match="methods present: ewc"):
        report.run_matrix(df, "mas")


def test_a_figure_title_says_how_many_trials_each_method_has():
    """Four seeds of finetuning beside two of EWC is not "4 trials": the title gives the range per method."""
    even = tidy_from({("ewc", 0): R_A, ("ewc", 1): R_B, ("si", 0): R_A, ("si", 1): R_B})
    assert report.trials_phrase(even) == "2 trials"
    uneven = tidy_from({("ewc", 0): R_A, ("ewc", 1): R_B, ("ewc", 2): R_A, ("ewc", 3): R_B, ("si", 0): R_A,
                        ("si", 1): R_B})
    assert report.trials_phrase(uneven) == "2–4 trials per method"


def test_percent_scales_accuracies_only():
    """Accuracy columns become percent; BWT, t and p stay fractions (rounded to 3 decimals); eta_init untouched."""
    df = pd.DataFrame({"avg_acc_mean": [0.12345], "paper_avg_acc": [0.5], "avg_acc_p": [0.01234],
                       "bwt_mean": [-0.12345], "trials": [3], "eta_init": [0.0005]})
    out = report.percent(df, 1)
    assert out.iloc[0].tolist() == [12.3, 50.0, 0.012, -0.123, 3, 0.0005]


def test_pval_never_prints_zero():
    """A p-value that rounds to 0.000 at 3 decimals is shown as below 0.001, never as zero; NaN is a dash."""
    from dhclib.paper.markdown import pval
    assert [pval(v) for v in (0.0001234, 0.0005, 0.0123, float("nan"))] == ["< 0.001", "0.001", "0.012", "—"]


def test_traces_summary_and_eta_table():
    """The summary averages over seeds; the eta table sits beside Table 4."""
    tr = pd.DataFrame({"step": [0, 50, 100, 150] * 2, "task": [0, 0, 1, 1] * 2, "seed": [0] * 4 + [1] * 4,
                       "eta": [1.0, 2.0, 3.0, 1.0, 3.0, 4.0, 5.0, 3.0], "hebb_norm": [0.0, 1, 2, 3] * 2,
                       "alpha_norm": [1.0, 1, 1, 1] * 2})
    s = report.trace_summary(tr).set_index("task")
    assert s.loc[1, "eta_end"] == pytest.approx(3.0) and s.loc[2, "eta_max"] == pytest.approx(4.0)
    assert s.loc[2, "hebb_norm_max"] == pytest.approx(3.0) and s.loc[1, "eta_min"] == pytest.approx(2.0)
    neg = tr.assign(eta=[1.0, -2.0, 3.0, 1.0, -3.0, -4.0, 5.0, 3.0])
    assert report.trace_summary(neg).set_index("task").loc[1, "eta_negative_share"] == pytest.approx(0.75)
    sweep = pd.concat([tidy_from({("dhp", 0): R_A}, "split_mnist").assign(eta_init=0.1),
                       tidy_from({("dhp", 0): R_C}, "split_mnist").assign(eta_init=0.001)])
    t4 = report.eta_table(sweep)
    assert t4["eta_init"].tolist() == [0.1, 0.001]
    assert t4["avg_acc_diff"].tolist() == pytest.approx([0.75 - 0.9843, 0.90 - 0.9832])


def test_figures_are_drawn_and_saved_as_png_and_pdf(tmp_path):
    """Every figure function draws from the report frames; save writes both formats."""
    df = tidy_from({("finetune", 0): R_A, ("finetune", 1): R_B, ("dhp", 0): R_C, ("dhp", 1): R_D})
    figs = {
        "curves": plots.accuracy_curves(report.curves(df), "t"),
        "fl": plots.first_and_latest(report.first_and_latest(df)),
        "r": plots.r_heatmaps({"finetune": R_A, "dhp": R_C}),
        "counts": plots.class_counts(pd.DataFrame([[1, 2], [3, 4]])),
    }
    for name, fig in figs.items():
        paths = plots.save(fig, tmp_path, name)
        assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    legend = [t.get_text() for t in figs["curves"].axes[0].get_legend().get_texts()]
    assert legend == ["Finetune (80.00%)", "DHP Softmax (92.50%)"]


def test_output_dirs_and_save_table(tmp_path, monkeypatch):
    """With $DHC_OUTPUT_ROOT: <root>/<profile>/<notebook>/ for artefacts and <root>/<profile>/ for the store.
    Without it (a run nobody asked to commit): the repository's store, and artefacts in the untracked
    outputs/scratch/, never the committed outputs/<profile>/<notebook>/; from notebooks/ as from the root."""
    monkeypatch.setenv("DHC_OUTPUT_ROOT", str(tmp_path / "root"))
    out, store = output_dirs("01_x", "quick")
    assert out == tmp_path / "root" / "quick" / "01_x" and store == tmp_path / "root" / "quick"
    monkeypatch.delenv("DHC_OUTPUT_ROOT")
    (tmp_path / "notebooks").mkdir()
    for cwd in (tmp_path, tmp_path / "notebooks"):
        monkeypatch.chdir(cwd)
        out, store = output_dirs("01_x", "paper")
        assert out == tmp_path / "outputs" / "scratch" / "paper" / "01_x" and store == tmp_path / "outputs" / "paper"
    assert not (tmp_path / "outputs").exists()  # made by the first table or run written, not before
    path = save_table(pd.DataFrame({"x": [1]}), out, "t")
    assert pd.read_csv(path)["x"].tolist() == [1] and not list(out.glob(".*tmp"))


def _flat(x: float) -> np.ndarray:
    return np.array([[x, np.nan], [x, x]])  # average accuracy x, BWT 0


def test_paired_tests_pair_the_seeds_and_match_the_formulas():
    """Baseline and DHP runs of one seed are pairs: a small, consistent loss on 4 of 5 seeds is significant paired
    (t on the differences, df = n − 1) although the seeds' spread hides it from Welch's test; the Wilcoxon
    signed-rank p is exact (one positive difference of rank 1: W+ = 1, p = 2·2/32); unpaired seeds are ignored."""
    a = np.array([0.80, 0.85, 0.90, 0.75, 0.70])
    d = np.array([-0.010, -0.012, -0.008, -0.011, 0.002])
    runs = {("finetune", s): _flat(a[s]) for s in range(5)} | {("dhp", s): _flat(a[s] + d[s]) for s in range(5)}
    runs[("finetune", 7)] = _flat(0.1)  # no dhp run of seed 7: not a pair
    runs |= {("si", 0): _flat(0.8), ("dhp+si", 0): _flat(0.9)}
    p = report.paired_tests(tidy_from(runs)).set_index("baseline")
    row = p.loc["finetune"]
    assert row["pairs"] == 5 and row["avg_acc_better"] == 1
    assert row["avg_acc_gain"] == pytest.approx(d.mean())
    t = d.mean() / (d.std(ddof=1) / math.sqrt(5))
    assert row["avg_acc_p"] == pytest.approx(2 * stats.t.sf(abs(t), df=4))
    assert row["avg_acc_p"] < 0.05 < row["avg_acc_welch_p"]
    assert row["avg_acc_wilcoxon_p"] == pytest.approx(2 * 2 / 32)
    assert math.isnan(row["bwt_p"])  # every BWT difference is zero
    assert p.loc["si", "pairs"] == 1 and math.isnan(p.loc["si", "avg_acc_p"])
    with pytest.raises(ValueError, match="one benchmark"):
        report.paired_tests(pd.concat([tidy_from(runs), tidy_from(runs, "permuted_mnist")]))


def test_traces_line_up_by_progress_through_each_task():
    """Trials whose tasks have different lengths (early stopping) meet at the same places: each task one unit
    wide, a traced step at its task plus its progress through it, the steps of one slice of a task averaged."""
    short = pd.DataFrame({"seed": 0, "step": [0, 1, 2, 3], "task": [0, 0, 1, 1], "eta": [1.0, 3.0, 5.0, 7.0]})
    long = pd.DataFrame({"seed": 1, "step": range(8), "task": [0, 0, 0, 0, 1, 1, 1, 1],
                         "eta": [1.0, 1.0, 3.0, 3.0, 5.0, 5.0, 7.0, 7.0]})
    a = report.traces_by_progress(pd.concat([short, long]), points_per_task=2)
    assert a[a["seed"] == 0][["task", "progress", "eta"]].values.tolist() == [
        [0, 0.25, 1.0], [0, 0.75, 3.0], [1, 1.25, 5.0], [1, 1.75, 7.0]]
    assert a[a["seed"] == 1][["task", "progress", "eta"]].values.tolist() == [
        [0, 0.25, 1.0], [0, 0.75, 3.0], [1, 1.25, 5.0], [1, 1.75, 7.0]]  # twice the steps, the same places
    ax = plots.traces(pd.concat([short, long]).assign(hebb_norm=1.0, alpha_norm=1.0)).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2"] and ax.get_xlim() == (0.0, 2.0)
    line = ax.get_lines()[0]  # eta, mean over the trials at each place (100 slices per task by default)
    at = dict(zip(np.round(line.get_xdata(), 3), line.get_ydata()))
    assert (at[0.005], at[0.335], at[0.995], at[1.995]) == (1.0, 1.0, 3.0, 7.0)


def test_figure3_puts_a_runaway_trace_on_a_log_axis():
    steps = np.arange(40)
    calm = pd.DataFrame({"seed": 0, "step": steps, "task": steps // 20, "eta": 0.01, "hebb_norm": 15.0 + steps * 0.1,
                         "alpha_norm": 1.0})
    assert plots.traces(calm).axes[1].get_yscale() == "linear"
    spiky = calm.assign(hebb_norm=np.where(steps == 20, 2300.0, 15.0))
    ax = plots.traces(spiky).axes[1]
    assert ax.get_yscale() == "log" and ax.get_title().endswith("(log scale)")


def test_a_dhp_only_setting_is_paired_with_the_plain_runs_it_changes():
    """``eta_clamp`` has no meaning for finetuning: ``dhp [eta_clamp=True]`` is paired with plain ``finetune`` and
    with plain ``dhp``; a setting both sides ran with pairs its own two rows; no empty pair is made up."""
    from dhclib.paper.report import pairs_present

    rows = pd.DataFrame([("finetune", "finetune", ""), ("dhp", "dhp", ""),
                         ("dhp [eta_clamp=True]", "dhp", "eta_clamp=True"),
                         ("finetune [optimizer=adam]", "finetune", "optimizer=adam"),
                         ("dhp [optimizer=adam]", "dhp", "optimizer=adam")], columns=["method", "base_method", "variant"])
    got = pairs_present(list(rows["method"]), pairs=[("finetune", "dhp"), ("si", "dhp+si")], rows=rows)
    assert got == [("finetune", "dhp"), ("si", "dhp+si"),
                   ("finetune", "dhp [eta_clamp=True]"), ("dhp", "dhp [eta_clamp=True]"),
                   ("finetune [optimizer=adam]", "dhp [optimizer=adam]")]
