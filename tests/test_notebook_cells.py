"""The benchmark notebooks' recurring cells, one call each (dhclib.paper.notebook): what they print and write."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dhclib.paper import notebook, regression, report  # noqa: E402

R_LOW = np.array([[0.9, np.nan], [0.7, 0.8]])  # average 0.75
R_HIGH = np.array([[1.0, np.nan], [0.9, 0.9]])  # average 0.90


def _tidy(runs: dict[tuple[str, int], np.ndarray], benchmark: str = "split_mnist") -> pd.DataFrame:
    rows = [(benchmark, m, m, "", s, "quick", f"k{m}{s}", t, i, R[t, i])
            for (m, s), R in runs.items() for t in range(2) for i in range(t + 1)]
    return pd.DataFrame(rows, columns=["benchmark", "method", "base_method", "variant", "seed", "profile",
                                       "config_key", "after_task", "task", "accuracy"])


def test_paper_claim_prints_the_papers_numbers_from_its_table(capsys):
    """Table 1's numbers, read from dhclib/paper_data/table1.csv, each pair's gain computed (never retyped)."""
    notebook.paper_claim("permuted_mnist")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "The paper (Permuted MNIST), average accuracy after the last task (%):"
    assert "  Finetune 76.73 → DHP Softmax 78.49 (+1.76 points)" in out
    assert "  MAS 88.52 → DHP Softmax + MAS 89.53 (+1.01 points)" in out
    assert out[-1] == "  best: DHP Softmax + MAS, 89.53"
    notebook.paper_claim("split_cifar10_100")  # Figure 8: scratch has no pair, and is still named
    out = capsys.readouterr().out
    assert "Scratch (a new network per task) 64.83" in out and "best: SI, 73.33" in out


def test_table1_and_its_check_print_what_the_cells_printed(tmp_path, capsys):
    """table1: the comparison saved and shown (with extra columns after the method); check_table1 and the
    verdicts' check print exactly what regression.check_table's format gives for the same arguments."""
    df = _tidy({("finetune", 0): R_LOW, ("finetune", 1): R_LOW, ("dhp", 0): R_HIGH, ("dhp", 1): R_HIGH})
    table = notebook.table1(df, "split_mnist", tmp_path, {"tasks": "2 of 5"})
    assert list(table.columns[:2]) == ["method", "tasks"] and (tmp_path / "table1.csv").is_file()
    save_ref = tmp_path / "ref"
    save_ref.mkdir()
    table.to_csv(save_ref / "table1.csv", index=False)
    capsys.readouterr()
    notebook.check_table1(table, lambda name: save_ref / f"{name}.csv")
    folded = capsys.readouterr().out
    expected = regression.format_check(regression.check_table(table, save_ref / "table1.csv", keys=["method"],
                                                              values=["avg_acc_mean", "bwt_mean"],
                                                              exact=["trials", "tasks"]))
    assert folded == expected + "\n"
    verdicts = notebook.verdicts(df, "split_mnist", tmp_path)
    assert verdicts.equals(report.dhp_verdicts(df, "split_mnist")) and (tmp_path / "verdicts.csv").is_file()
    tests = notebook.paired(df, tmp_path)
    assert tests.equals(report.paired_tests(df)) and (tmp_path / "paired_tests.csv").is_file()


def test_diverged_cells(tmp_path, capsys):
    notebook.list_diverged(pd.DataFrame(columns=["method", "seed", "message"]))
    assert capsys.readouterr().out == "no run diverged\n"
    lost = pd.DataFrame({"method": ["ewc"], "seed": [0], "message": ["loss nan"]})
    notebook.list_diverged(lost)
    assert "loss nan" in capsys.readouterr().out
    lost[["method", "seed"]].to_csv(tmp_path / "diverged.csv", index=False)
    notebook.check_diverged(lost, lambda name: tmp_path / f"{name}.csv")
    assert "DIFFERS" not in capsys.readouterr().out


def test_figures_are_written(tmp_path):
    df = _tidy({("ewc", 0): R_LOW, ("dhp+ewc", 0): R_HIGH, ("mas", 0): R_LOW})
    notebook.accuracy_figure(df, pd.DataFrame(columns=["method", "seed", "message"]), "split_mnist", "quick",
                             tmp_path)
    notebook.first_and_latest_figure(df, "split_mnist", "quick", tmp_path)
    notebook.r_matrices_figure(df, "split_mnist", tmp_path)
    written = {p.name for p in tmp_path.iterdir()}
    assert {"curves.csv", "average_accuracy.png", "first_and_latest.csv", "first_and_latest.pdf",
            "r_matrices.png"} <= written
