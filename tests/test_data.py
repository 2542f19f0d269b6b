"""dhclib.data.idx: reading MNIST-layout IDX roots (docs/data.md; docs/method.md (benchmarks) "pixels scaled to [0, 1]")."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import dhclib
import dhclib.data.idx as data
EXPECTED_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


@pytest.fixture
def write_idx(idx_helpers):
    return idx_helpers.write_idx


@pytest.fixture
def snapshot_tree(idx_helpers):
    return idx_helpers.snapshot_tree


# ---------------------------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------------------------
def test_read_idx_round_trip(tmp_path, write_idx):
    """read_idx decodes the IDX header (magic 0x00000803 / 0x00000801, big-endian dims) and the data exactly."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    p_img = write_idx(tmp_path / "img", images)
    p_lab = write_idx(tmp_path / "lab", labels, gz=True)
    assert p_img.read_bytes()[:4] == b"\x00\x00\x08\x03"
    assert gzip.decompress(p_lab.read_bytes())[:8] == b"\x00\x00\x08\x01\x00\x00\x00\x07"
    np.testing.assert_array_equal(data.read_idx(p_img), images)
    np.testing.assert_array_equal(data.read_idx(p_lab), labels)


def test_loader_returns_exactly_the_written_arrays(clear_memo, idx_root_variant, small_arrays):
    """load_idx_dataset reads the generated root, gzipped and raw, and returns exactly the arrays written."""
    arrays = data.load_idx_dataset("MNIST", idx_root_variant, download=False)
    assert set(arrays) == {"x_train", "y_train", "x_test", "y_test"}
    for key, expected in small_arrays.items():
        got = arrays[key]
        assert got.device.type == "cpu"
        assert tuple(got.shape) == expected.shape
        np.testing.assert_array_equal(got.numpy(), expected.astype(got.numpy().dtype))
    assert arrays["x_train"].dtype == torch.uint8
    assert arrays["y_train"].dtype == torch.int64


def test_gz_and_raw_variants_really_differ_on_disk(idx_root, idx_root_gz):
    """The fixture offers both layouts: raw files in one root, only ``.gz`` files in the other."""
    raw_files = sorted(p.name for p in (idx_root / "MNIST" / "raw").iterdir())
    gz_files = sorted(p.name for p in (idx_root_gz / "MNIST" / "raw").iterdir())
    assert raw_files == sorted(EXPECTED_FILES)
    assert gz_files == sorted(f + ".gz" for f in EXPECTED_FILES)


def test_load_mnist_scales_and_flattens(clear_memo, idx_root, small_arrays):
    """load_mnist: images flattened to (N, 784), float, scaled to [0, 1] (x / 255); labels int64 (docs/method.md (benchmarks))."""
    d = data.load_mnist(idx_root, download=False)
    assert d["x_train"].shape == (600, 784) and d["x_test"].shape == (100, 784)
    assert d["x_train"].dtype == torch.float32
    assert float(d["x_train"].min()) >= 0.0 and float(d["x_train"].max()) <= 1.0
    expected = small_arrays["x_train"].reshape(600, 784).astype(np.float32) / 255.0
    np.testing.assert_allclose(d["x_train"].numpy(), expected, rtol=0, atol=1e-7)
    assert float(d["x_train"].max()) == pytest.approx(small_arrays["x_train"].max() / 255.0)
    np.testing.assert_array_equal(d["y_test"].numpy(), small_arrays["y_test"].astype(np.int64))
    assert d["y_train"].dtype == torch.int64


def test_load_mnist_does_not_alter_the_memoised_uint8_arrays(clear_memo, idx_root, small_arrays):
    """Scaling happens on a copy: a second load returns the same values (no in-place division of the cache)."""
    first = data.load_mnist(idx_root, download=False)
    second = data.load_mnist(idx_root, download=False)
    torch.testing.assert_close(first["x_train"], second["x_train"], rtol=0, atol=0)
    raw = data.load_idx_dataset("MNIST", idx_root, download=False)
    np.testing.assert_array_equal(raw["x_train"].numpy(), small_arrays["x_train"])


# ---------------------------------------------------------------------------------------------------------------
# missing or damaged files
# ---------------------------------------------------------------------------------------------------------------
def _assert_names_dir_and_files(msg: str, raw_dir: Path) -> None:
    assert str(raw_dir) in msg, msg
    for stem in EXPECTED_FILES:
        assert stem in msg, f"{stem} not named in: {msg}"


def test_missing_files_without_download(tmp_path):
    """Missing files with download=False: DataNotFoundError naming the directory and all four expected files."""
    with pytest.raises(dhclib.DataNotFoundError) as info:
        data.load_idx_dataset("MNIST", tmp_path / "nowhere", download=False)
    _assert_names_dir_and_files(str(info.value), tmp_path / "nowhere" / "MNIST" / "raw")
    assert isinstance(info.value, FileNotFoundError)  # DataNotFoundError is also a FileNotFoundError


def test_one_missing_file_is_reported(fresh_idx_root):
    """A root with three of the four files is incomplete: DataNotFoundError with the full expected list."""
    (fresh_idx_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(dhclib.DataNotFoundError) as info:
        data.load_mnist(fresh_idx_root, download=False)
    _assert_names_dir_and_files(str(info.value), fresh_idx_root / "MNIST" / "raw")


def test_missing_files_through_benchmarks(tmp_path):
    """The benchmark builders pass download=False through to the loader."""
    with pytest.raises(dhclib.DataNotFoundError, match="train-images-idx3-ubyte"):
        dhclib.benchmarks.permuted_mnist(0, n_tasks=1, data_dir=tmp_path, download=False)


def test_no_data_root_at_all(monkeypatch):
    """No data_dir and no $DHC_DATA_DIR: the error says how to give a data root."""
    monkeypatch.delenv("DHC_DATA_DIR", raising=False)
    with pytest.raises(dhclib.DataNotFoundError) as info:
        data.load_idx_dataset("MNIST", None, download=False)
    msg = str(info.value)
    assert "DHC_DATA_DIR" in msg and "data_dir" in msg
    for stem in EXPECTED_FILES:
        assert stem in msg


def test_failed_download_is_reported_on_one_line(tmp_path, offline, isolated_cache, monkeypatch):
    """No data root, download on, no network: DataNotFoundError naming the files and the failed download (into
    the cache). The message must be one line: the CLI prints it as ``error: <message>`` (docs/guide.md, "Command line")."""
    monkeypatch.delenv("DHC_DATA_DIR", raising=False)
    with pytest.raises(dhclib.DataNotFoundError) as info:
        data.load_idx_dataset("MNIST", None, download=True)
    msg = str(info.value)
    assert "no data root" in msg and all(stem in msg for stem in EXPECTED_FILES)
    assert str(isolated_cache / "download") in msg and "failed too" in msg
    assert (isolated_cache / "download" / "MNIST" / "raw").is_dir()  # torchvision was pointed at the cache
    assert "\n" not in msg.strip(), f"multi-line error message:\n{msg}"


def test_a_root_given_is_never_completed_by_a_download(tmp_path, offline, isolated_cache):
    """A root that lacks a file (a typo, a partial copy) is an error naming the missing files; nothing is fetched."""
    root = tmp_path / "partial"
    (root / "MNIST" / "raw").mkdir(parents=True)
    (root / "MNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(dhclib.DataNotFoundError) as info:
        data.load_idx_dataset("MNIST", root, download=True)
    msg = str(info.value)
    assert str(root / "MNIST" / "raw") in msg and "never completed by a download" in msg
    missing = msg.split("missing ", 1)[1].split(". ", 1)[0]
    assert "train-images" not in missing and "t10k-labels-idx1-ubyte[.gz]" in missing
    assert not (isolated_cache / "download").exists()


def test_bad_magic_number(fresh_idx_root):
    """A file whose magic number is not IDX's raises DataNotFoundError naming the file."""
    path = fresh_idx_root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x50\x4b\x03\x04" + b"\x00" * 100)  # a zip header, not IDX
    with pytest.raises(dhclib.DataNotFoundError, match="bad magic") as info:
        data.load_idx_dataset("MNIST", fresh_idx_root, download=False)
    assert "train-labels-idx1-ubyte" in str(info.value)


def test_truncated_data(fresh_idx_root):
    """A file cut short in its data section raises DataNotFoundError saying it is truncated."""
    path = fresh_idx_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(dhclib.DataNotFoundError, match="truncated") as info:
        data.load_idx_dataset("MNIST", fresh_idx_root, download=False)
    assert "train-images-idx3-ubyte" in str(info.value)


def test_truncated_header(fresh_idx_root):
    """A file cut short inside its header (magic present, dims missing) also raises a clear DataNotFoundError,
    not a bare numpy ValueError."""
    path = fresh_idx_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:8])
    with pytest.raises(dhclib.DataNotFoundError) as info:
        data.read_idx(path)
    assert "train-images-idx3-ubyte" in str(info.value)


def test_truncated_gzip_file(tmp_path, idx_helpers):
    """A gzipped file cut short (an interrupted copy) raises a clear DataNotFoundError, not EOFError."""
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    full = gzip.compress(idx_helpers.idx_bytes(np.arange(5000, dtype=np.uint8) % 10))
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(dhclib.DataNotFoundError) as info:
        data.read_idx(path)
    assert "train-labels-idx1-ubyte.gz" in str(info.value)


def test_image_and_label_counts_disagree(fresh_idx_root, small_arrays, write_idx):
    """Images and labels of different lengths raise DataNotFoundError saying the files disagree."""
    write_idx(fresh_idx_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", small_arrays["y_test"][:50])
    with pytest.raises(dhclib.DataNotFoundError, match="disagree"):
        data.load_idx_dataset("MNIST", fresh_idx_root, download=False)


# ---------------------------------------------------------------------------------------------------------------
# the data root is read-only; the cache
# ---------------------------------------------------------------------------------------------------------------
def test_nothing_written_into_generated_root(clear_memo, idx_root_variant, isolated_cache, snapshot_tree):
    """Loading and building every benchmark writes nothing into the data root (files, sizes and mtimes unchanged);
    the decoded cache goes to DHC_CACHE_DIR instead."""
    before = snapshot_tree(idx_root_variant)
    data.load_mnist(idx_root_variant, download=False)
    dhclib.benchmarks.permuted_mnist(0, n_tasks=2, data_dir=idx_root_variant, download=False)
    dhclib.benchmarks.split_mnist(0, n_tasks=2, data_dir=idx_root_variant, download=False)
    assert snapshot_tree(idx_root_variant) == before
    assert list(isolated_cache.glob("mnist-*.pt")), "no decoded cache under DHC_CACHE_DIR"


def test_nothing_written_into_real_root(clear_memo, mnist_root, isolated_cache, snapshot_tree):
    """The same with the real data root (skipped when real MNIST is absent)."""
    before = snapshot_tree(mnist_root)
    d = data.load_mnist(mnist_root, download=False)
    assert d["x_train"].shape == (60000, 784)
    assert snapshot_tree(mnist_root) == before
    assert list(isolated_cache.glob("mnist-*.pt"))


def test_cache_lands_in_cache_dir_and_is_reused(clear_memo, idx_root, isolated_cache, small_arrays, monkeypatch):
    """The decoded arrays are cached under DHC_CACHE_DIR and a later load (new process: memo empty) reads the
    cache instead of decoding the IDX files again."""
    assert data.cache_dir() == isolated_cache
    data.load_idx_dataset("MNIST", idx_root, download=False)
    cached = list(isolated_cache.glob("mnist-*.pt"))
    assert len(cached) == 1
    assert not [p for p in isolated_cache.iterdir() if ".tmp" in p.name]  # written atomically

    clear_memo.clear()  # as in a new process

    def no_decoding(path):
        raise AssertionError(f"IDX file decoded again instead of reading the cache: {path}")

    monkeypatch.setattr(data, "read_idx", no_decoding)
    again = data.load_idx_dataset("MNIST", idx_root, download=False)
    np.testing.assert_array_equal(again["x_train"].numpy(), small_arrays["x_train"])
    np.testing.assert_array_equal(again["y_test"].numpy(), small_arrays["y_test"])


def test_cache_follows_changed_files(clear_memo, fresh_idx_root, small_arrays, write_idx):
    """The cache is keyed by the files' paths, sizes and mtimes: a replaced file is decoded again, never stale."""
    first = data.load_idx_dataset("MNIST", fresh_idx_root, download=False)
    assert int(first["y_test"][0]) == int(small_arrays["y_test"][0])
    new_labels = (small_arrays["y_test"].astype(np.int64) + 1) % 10
    path = write_idx(fresh_idx_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", new_labels.astype(np.uint8))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # same size: only the mtime differs
    clear_memo.clear()
    second = data.load_idx_dataset("MNIST", fresh_idx_root, download=False)
    np.testing.assert_array_equal(second["y_test"].numpy(), new_labels)


def test_corrupt_cache_is_rebuilt(clear_memo, idx_root, isolated_cache, small_arrays):
    """A corrupt cache file is never trusted: the arrays are decoded again from the data root."""
    data.load_idx_dataset("MNIST", idx_root, download=False)
    (cached,) = isolated_cache.glob("mnist-*.pt")
    cached.write_bytes(b"not a torch file")
    clear_memo.clear()
    again = data.load_idx_dataset("MNIST", idx_root, download=False)
    np.testing.assert_array_equal(again["x_test"].numpy(), small_arrays["x_test"])


def test_every_stored_run_records_the_files_it_read(clear_memo, idx_root, isolated_cache, tmp_path, monkeypatch):
    """A run's result names each file it read with its size and SHA-256 (issue #8, item 4), hashed once per version
    of the files: a fresh process reads the hashes kept beside the cache instead of hashing again."""
    import hashlib
    import json

    from dhclib.data import cache

    monkeypatch.setattr(cache, "PROVENANCE", {})  # hashed in this test, whatever earlier tests read
    dhclib.run_many("split_mnist", "finetune", "0", "quick", "cpu", idx_root, tmp_path / "store", progress=False,
                    n_tasks=1, train_size=50, test_size=20, max_epochs=1, min_epochs=1)
    (stored,) = (tmp_path / "store").glob("runs/*/*/*.json")
    data = json.loads(stored.read_text())["data"]
    assert list(data) == ["mnist"]
    raw = idx_root / "MNIST" / "raw"
    assert sorted(data["mnist"]) == sorted(["test_images", "test_labels", "train_images", "train_labels"])
    for role, entry in data["mnist"].items():
        path = raw / entry["file"]
        assert entry["bytes"] == path.stat().st_size
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert list(isolated_cache.glob("mnist-*.sha256.json"))
    cache.PROVENANCE.clear()  # as in a new process
    monkeypatch.setattr(cache, "_sha256", lambda p: pytest.fail(f"{p} hashed again"))
    assert dhclib.runs.build.data_provenance(
        dhclib.runs.config.resolve_config("split_mnist", "finetune", 1, "quick", "cpu"), idx_root) == data


def test_the_cache_removes_what_a_killed_writer_left_and_a_failed_write_leaves_nothing(clear_memo, idx_root,
                                                                                       isolated_cache, monkeypatch):
    """A cache file killed mid-write leaves ``<name>.tmp<pid>``: removed at the next write once that process is
    gone; a write that fails (a full disk) leaves no temporary file."""
    from dhclib.data import cache

    isolated_cache.mkdir(parents=True)
    orphan = isolated_cache / "mnist-0123456789abcdef.tmp999999"  # no such process
    orphan.write_bytes(b"half a tensor")
    mine = isolated_cache / f"other.tmp{os.getpid()}"  # a live writer's (this process): kept
    mine.write_bytes(b"")
    data.load_idx_dataset("MNIST", idx_root, download=False)
    assert not orphan.exists() and mine.exists()
    assert list(isolated_cache.glob("mnist-*.pt"))

    def full_disk(obj, f):
        Path(f).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.torch, "save", full_disk)
    cache.save_atomic({"x": 1}, isolated_cache / "t.pt")
    assert not (isolated_cache / "t.pt").exists() and not list(isolated_cache.glob("t.tmp*"))
