"""Shared fixtures: generated MNIST-layout data roots (IDX files), the real data root, an isolated cache.

Every test gets its own ``DHC_CACHE_DIR`` (autouse), so no test writes into the user's cache. Tests that need real
MNIST take ``mnist_root`` and skip with a clear reason when it is absent; every other test uses generated roots.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

import dhclib.data.cache
import dhclib.data.idx

IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

# Real MNIST's class counts (README of the data folder): 60,000 train with 6,742 of class 1, enough for Table 2.
MNIST_TRAIN_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
MNIST_TEST_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)

REAL_DATA_SKIP = "real MNIST not available: set DHC_DATA_DIR to a data root with MNIST/raw (see README)"


# ---------------------------------------------------------------------------------------------------------------
# IDX writer and synthetic data
# ---------------------------------------------------------------------------------------------------------------
def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: magic ``0 0 0x08 ndim``, big-endian uint32 dims, then the bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """Write one IDX file (``path`` without ``.gz``; ``gz=True`` appends it and compresses, fast level 1)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb", compresslevel=1) as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def write_mnist_root(root: Path, arrays: dict[str, np.ndarray], gz: bool = False, name: str = "MNIST") -> Path:
    """A data root in torchvision's layout, ``<root>/<name>/raw/<four IDX files>``; returns ``root``."""
    raw = Path(root) / name / "raw"
    for key, stem in IDX_NAMES.items():
        write_idx(raw / stem, arrays[key], gz=gz)
    return Path(root)


def synthetic_mnist(train_counts, test_counts, seed: int = 0) -> dict[str, np.ndarray]:
    """Learnable MNIST-shaped data: each class a fixed random binary 28x28 prototype plus uniform noise (uint8).

    Rows are shuffled, so classes are interleaved as in MNIST. The signal is weak enough that a few quick-profile
    epochs give accuracies well above chance but below 1 (so R carries information), and longer training
    learns the tasks.
    """
    rng = np.random.default_rng(seed)
    protos = (rng.random((10, 28, 28)) < 0.3).astype(np.uint8) * 80

    def make(counts):
        y = np.repeat(np.arange(10, dtype=np.uint8), counts)
        rng.shuffle(y)
        x = protos[y] + rng.integers(0, 176, size=(y.size, 28, 28), dtype=np.uint8)  # max 255: no overflow
        return x, y

    x_train, y_train = make(train_counts)
    x_test, y_test = make(test_counts)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def snapshot_tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time (ns)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


# ---------------------------------------------------------------------------------------------------------------
# shards: `make unit` runs the suite as two processes at once (scripts/test_shards.sh)
# ---------------------------------------------------------------------------------------------------------------
def pytest_addoption(parser):
    parser.addoption("--shard", default=None, metavar="I/N",
                     help="run only every N-th collected test, from the I-th (1 <= I <= N): shard I of N")


def pytest_collection_modifyitems(config, items):
    spec = config.getoption("--shard")
    if spec is None:
        return
    try:
        i, n = (int(v) for v in spec.split("/"))
        if not 1 <= i <= n:
            raise ValueError
    except ValueError:
        raise pytest.UsageError(f"--shard must be I/N with 1 <= I <= N (e.g. 1/2), got {spec!r}") from None
    # every N-th test, not every N-th file (the slow tests sit together in a few files), the tests marked slow
    # dealt out on their own so that each shard gets its share of them
    slow = [t for t in items if t.get_closest_marker("slow")]
    rest = [t for t in items if not t.get_closest_marker("slow")]
    mine = {id(t) for group in (slow, rest) for k, t in enumerate(group) if k % n == i - 1}
    config.hook.pytest_deselected(items=[t for t in items if id(t) not in mine])
    items[:] = [t for t in items if id(t) in mine]


# ---------------------------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The models under test are tiny: run torch single-threaded. On a small CPU shared with another job, torch's
    intra-op threads otherwise contend for the cores and make each step ~100x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Every test caches into its own temporary ``DHC_CACHE_DIR``, never the user's cache."""
    cache = tmp_path / "dhc-cache"
    monkeypatch.setenv("DHC_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def clear_memo():
    """Empty dhclib's in-process memo of decoded datasets for this test (restored afterwards, for speed)."""
    saved = dict(dhclib.data.cache.MEMO)
    dhclib.data.cache.MEMO.clear()
    yield dhclib.data.cache.MEMO
    dhclib.data.cache.MEMO.clear()
    dhclib.data.cache.MEMO.update(saved)


@pytest.fixture(scope="session")
def small_arrays() -> dict[str, np.ndarray]:
    """600 train (60 per class) / 100 test (10 per class) synthetic images, as written into the small roots."""
    return synthetic_mnist([60] * 10, [10] * 10, seed=1)


@pytest.fixture(scope="session")
def idx_root(tmp_path_factory, small_arrays) -> Path:
    """Small generated data root, raw (uncompressed) IDX files: ``<root>/MNIST/raw/``."""
    return write_mnist_root(tmp_path_factory.mktemp("idx-raw"), small_arrays, gz=False)


@pytest.fixture(scope="session")
def idx_root_gz(tmp_path_factory, small_arrays) -> Path:
    """The same small data root with gzipped IDX files (``*.gz``), as in the official distribution."""
    return write_mnist_root(tmp_path_factory.mktemp("idx-gz"), small_arrays, gz=True)


@pytest.fixture(params=["raw", "gz"])
def idx_root_variant(request, idx_root, idx_root_gz) -> Path:
    """Both variants of the small root, one after the other."""
    return idx_root if request.param == "raw" else idx_root_gz


@pytest.fixture
def fresh_idx_root(tmp_path, small_arrays) -> Path:
    """A per-test copy of the small raw root, for tests that modify or damage files."""
    return write_mnist_root(tmp_path / "data", small_arrays, gz=False)


@pytest.fixture(scope="session")
def full_arrays() -> dict[str, np.ndarray]:
    """Full-size synthetic MNIST: 60,000 train / 10,000 test with real MNIST's class counts."""
    return synthetic_mnist(MNIST_TRAIN_COUNTS, MNIST_TEST_COUNTS, seed=2)


@pytest.fixture(scope="session")
def full_idx_root(tmp_path_factory, full_arrays) -> Path:
    """Full-size generated root (raw IDX files, for speed): enough samples per class for Table 2's counts."""
    return write_mnist_root(tmp_path_factory.mktemp("idx-full"), full_arrays, gz=False)


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The real data root from ``$DHC_DATA_DIR`` if it has ``MNIST/raw``; otherwise the test is skipped."""
    env = os.environ.get("DHC_DATA_DIR")
    if not env or not (Path(env).expanduser() / "MNIST" / "raw").is_dir():
        pytest.skip(REAL_DATA_SKIP)
    return Path(env).expanduser()


@pytest.fixture
def offline(monkeypatch):
    """Simulate a machine without network: torchvision's MNIST download fails as it does offline (URLError per
    mirror), without touching the network."""
    from urllib.error import URLError

    import torchvision.datasets.mnist as tv_mnist

    def no_network(url, *args, **kwargs):
        raise URLError("[Errno -2] Name or service not known (simulated offline by the test)")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", no_network)


@pytest.fixture(scope="session")
def idx_helpers():
    """The IDX writer and tree-snapshot helpers of this file, for tests (no ``import conftest`` needed)."""
    from types import SimpleNamespace

    return SimpleNamespace(idx_bytes=idx_bytes, write_idx=write_idx, write_mnist_root=write_mnist_root,
                           snapshot_tree=snapshot_tree, synthetic_mnist=synthetic_mnist, IDX_NAMES=IDX_NAMES,
                           MNIST_TRAIN_COUNTS=MNIST_TRAIN_COUNTS, MNIST_TEST_COUNTS=MNIST_TEST_COUNTS)
