"""The notebooks' regression checks (issue #5, item 3): tolerant where the numeric path moves numbers, strict on
verdicts, and failing for a real change — proved by training a method broken on purpose."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import dhclib
from dhclib import regression, report
from dhclib.method.consolidation import MAS

REF = pd.DataFrame({"method": ["finetune", "mas"], "avg_acc_mean": [0.73, 0.80], "bwt_mean": [-0.18, -0.07],
                    "trials": [3, 3]})


def _check(ours, **kw):
    kw.setdefault("keys", ["method"])
    kw.setdefault("values", ["avg_acc_mean", "bwt_mean"])
    kw.setdefault("exact", ["trials"])
    return regression.check_table(ours, REF, **kw).set_index("method")["check"]


def test_within_tolerance_is_ok_and_beyond_it_differs():
    tol = regression.TOLERANCE["avg_acc"]
    ours = REF.assign(avg_acc_mean=REF.avg_acc_mean + [0.9 * tol, -1.1 * tol])
    check = _check(ours)
    assert check["finetune"] == "ok"
    assert check["mas"].startswith("DIFFERS: avg_acc_mean") and f"tolerance {tol}" in check["mas"]


def test_exact_columns_rows_and_nan():
    ours = REF.assign(trials=[3, 2])
    assert _check(ours)["mas"] == "DIFFERS: trials 2 vs 3"
    both_nan = REF.assign(avg_acc_mean=np.nan, bwt_mean=np.nan)
    assert (regression.check_table(both_nan, both_nan, ["method"], ["avg_acc_mean"])["check"] == "ok").all()
    one_nan = REF.assign(avg_acc_mean=[np.nan, 0.8])
    assert _check(one_nan)["finetune"].startswith("DIFFERS: avg_acc_mean nan")
    extra = pd.concat([REF, REF.iloc[:1].assign(method="si")], ignore_index=True)
    assert _check(extra)["si"] == "not in the reference"
    assert _check(REF.iloc[:1])["mas"] == "missing here"


def test_verdicts_must_match_exactly():
    ref = pd.DataFrame({"baseline": ["finetune"], "verdict": ["not reproduced: no significant difference"]})
    ours = ref.assign(verdict="reproduced")
    out = regression.check_table(ours, ref, ["baseline"], exact=["verdict"])
    assert out["check"].iloc[0] == "DIFFERS: verdict 'reproduced' vs 'not reproduced: no significant difference'"


def test_missing_reference_and_unknown_column(tmp_path):
    out = regression.check_table(REF, tmp_path / "absent.csv", ["method"], ["avg_acc_mean"])
    assert out["check"].iloc[0] == "no committed reference absent.csv: nothing to compare"
    with pytest.raises(ValueError, match="no tolerance for column 'wall_time'"):
        regression.check_table(REF, REF, ["method"], ["wall_time"])
    assert regression.format_check(regression.check_table(REF.iloc[:0], REF.iloc[:0], ["method"])) == \
        "no rows here or in the reference: ok"


def test_printed_check_holds_no_numbers_when_ok():
    text = regression.format_check(regression.check_table(REF, REF, ["method"], ["avg_acc_mean"]))
    assert "0.73" not in text and text.split("\n")[1].split() == ["finetune", "ok"]


@pytest.mark.parametrize("notebook", ["01_permuted_mnist", "02_imbalanced_permuted_mnist", "03_split_mnist",
                                      "04_vision_mixture"])
def test_committed_references_exist_for_the_checked_tables(notebook):
    for table in ("table1", "verdicts", "diverged"):
        path = regression.reference_path(notebook, table)
        assert path.is_file(), f"{path} missing: run `make reference` after `make notebooks`"
    ref = pd.read_csv(regression.reference_path(notebook, "table1"))
    assert ref["avg_acc_mean"].notna().sum() >= 6  # real results, not an empty frame


@pytest.mark.slow
def test_a_broken_method_fails_the_checked_cell(mnist_root, tmp_path, monkeypatch):
    """MAS with its penalty switched off, trained on the quick profile exactly as notebook 01 trains MAS: the
    checked Table 1 cell must report the row as differing (while the committed reference of the working MAS
    passes nbval: `make nbval`)."""
    monkeypatch.setattr(MAS, "add_penalty_grad", lambda self: None)
    df = dhclib.run_many("permuted_mnist", "mas", "0-2", "quick", "cpu", mnist_root, tmp_path, progress=False)
    table = report.table1_comparison(df, "permuted_mnist")
    table = table[table["method"] == "mas"]
    ref = pd.read_csv(regression.reference_path("01_permuted_mnist", "table1"))
    ref = ref[ref["method"] == "mas"]
    check = regression.check_table(table, ref, ["method"], ["avg_acc_mean", "bwt_mean"], ["trials"])
    assert check["check"].iloc[0].startswith("DIFFERS: avg_acc_mean"), check["check"].iloc[0]
    drop = float(ref["avg_acc_mean"].iloc[0] - table["avg_acc_mean"].iloc[0])
    assert drop > 2 * regression.TOLERANCE["avg_acc"]  # the README and notebook say how far it falls


def test_a_verdict_is_checked_as_its_claims_outcome():
    """'Worse' and 'no significant difference' are one outcome for the check (a 3-pair p moves across CPUs);
    a significant gain, and an untested pair, stay distinct."""
    ref = pd.DataFrame({"baseline": ["a", "b", "c", "d"],
                        "verdict": ["not reproduced: no significant difference", "no significant difference",
                                    "reproduced", "no result (not run, or every trial diverged)"]})
    ours = ref.assign(verdict=["not reproduced: DHP Softmax is worse", "not reproduced: DHP Softmax is worse",
                               "not reproduced: no significant difference", "too few trials to test"])
    got = regression.check_table(ours, ref, keys=["baseline"], exact=["verdict"]).set_index("baseline")["check"]
    assert got["a"] == "ok" and got["b"] == "ok"
    assert got["c"].startswith("DIFFERS: verdict") and got["d"].startswith("DIFFERS: verdict")
