"""benchmarks/throughput.py's table against dhclib's fine-tuning (issue #7, item 8), as a dry run: it measures
every method it is given on task 2 with task 1 consolidated, and prints the table the README quotes. Not a timing
test: no speed is asserted (speed is measured by the script, never by a test)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from dhclib.benchmarks import permuted_mnist

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("throughput", ROOT / "benchmarks" / "throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_finetune_table_measures_each_method_with_its_penalty_active(idx_root, capsys):
    thr = _script()
    cpu = torch.device("cpu")
    tasks = permuted_mnist(0, n_tasks=2, train_size=500, data_dir=idx_root, device=cpu)
    si = thr.Trainee("si", tasks, cpu, warm_steps=3)
    assert si.reg.omega is not None and si.reg.lam > 0  # task 1 consolidated: the penalty is on for task 2
    rows = thr.against_finetune(["finetune", "dhp", "ewc"], tasks, cpu, rounds=2, block=2, repeats=1)
    assert [r[0] for r in rows] == ["finetune", "dhp", "ewc"] and rows[0][2] == 1.0
    assert all(r[1] > 0 and r[5] > 0 for r in rows) and rows[2][4] > 0  # EWC's boundary (its Fisher) is timed
    thr.print_against_finetune(rows, 2, 2, cpu)
    out = capsys.readouterr().out
    assert "| dhp |" in out and "<= 1.15x" in out and "<= 1.25x" in out
