"""The numeric environment of a run: what decides its floating-point sums, recorded with every stored result.

Same code and seed give the same numbers only on the same numeric path: the same torch build, the same CPU kernel
family (ATen's dispatch capability: ``default``, ``avx2``, ``avx512``...), the same BLAS and the same thread count
(a sum split over more threads is added in another order). After thousands of SGD steps two paths that differ in
the last bit of one sum give visibly different accuracies (issue #5; docs/reproducibility.md). So a stored run
says which path made it, and the test and notebook lanes pin the parts that can be pinned.
"""

from __future__ import annotations

import os
import platform
import re

import numpy as np
import torch

__all__ = ["numeric_environment", "cpu_model", "PINNED_ENV"]

# Set by notebooks/lanes.sh (tests, nbval, make reproduce; not the speed benchmarks): ATen's AVX2 kernels exist on
# every x86-64 CPU of the last decade, with or without AVX-512, so the same vectorised code runs everywhere; MKL's
# conditional numerical reproducibility mode likewise fixes its code path. One thread each (lanes.sh says why).
PINNED_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

_ENV_KEYS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE",
             "CUBLAS_WORKSPACE_CONFIG")


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    """The vector extensions the CPU offers (those that decide ATen's and MKL's kernels)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    wanted = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")
    return [f for f in wanted if f in flags]


def _torch_blas() -> str:
    """BLAS and LAPACK as torch's build reports them (e.g. ``mkl``, ``open``)."""
    cfg = torch.__config__.show()
    found = {k: m.group(1) for k in ("BLAS_INFO", "LAPACK_INFO")
             if (m := re.search(rf"{k}=([^,\s]+)", cfg))}
    return ", ".join(f"{k.split('_')[0].lower()}={v}" for k, v in found.items()) or "unknown"


def _numpy_blas() -> str:
    try:
        info = np.show_config(mode="dicts")
        blas = info["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older numpy: no dict mode; the version alone still identifies the wheel
        return "unknown"


def numeric_environment(device: str | torch.device = "cpu") -> dict:
    """Everything that decides a run's floating-point path, as a JSON-ready dict (stored as ``numeric_env``)."""
    dev = torch.device(device)
    env = {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_flags": " ".join(_cpu_flags()),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_blas": _torch_blas(),
        "mkl": torch.backends.mkl.is_available(),
        "numpy_blas": _numpy_blas(),
        "threads": torch.get_num_threads(),
        "device": str(dev),
        "env": {k: os.environ[k] for k in _ENV_KEYS if k in os.environ},
    }
    if dev.type == "cuda":
        env.update(gpu=torch.cuda.get_device_name(dev), cudnn=torch.backends.cudnn.version(),
                   tf32_matmul=torch.backends.cuda.matmul.allow_tf32)
    return env
