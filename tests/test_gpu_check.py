"""The GPU check's dry run (issue #7, item 6): `benchmarks/gpu_check.sh --device cpu --smoke` runs all three parts on
generated data and writes its one result file, so that a session lent a GPU can run it as is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_dry_run_on_the_cpu(idx_root, tmp_path):
    out = tmp_path / "gpu_check.md"
    env = dict(os.environ, PY=sys.executable, DHC_DATA_DIR=str(idx_root), GPU_CHECK_TIMEOUT="300")
    subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--smoke", "--cuda-graphs",
                    "--out", str(out)], check=True, env=env, cwd=tmp_path, capture_output=True, text=True)
    text = out.read_text()
    assert "SMOKE RUN" in text
    for part in ("## 1. Stacked engine throughput", "## 2. Split MNIST", "## 3. Projected"):
        assert part in text
    assert "| finetune | 2 |" in text and "| dhp | 2 |" in text  # the throughput rows at N = 2
    rows = [line for line in text.splitlines() if line.startswith(("| finetune | 2 | ", "| dhp | 2 | "))]
    assert len(rows) == 4  # one throughput row and one Split MNIST row per method
    assert "| all three |" in text and " min |" in text
    assert "stack 10, CUDA graphs:" in text  # part 2 on the path --cuda-graphs gives runs (inert on a CPU)
