"""dhclib.data.vision and dhclib.data.fake: the CNN benchmarks' datasets (docs/method.md (benchmarks), Vision Datasets Mixture and
Split CIFAR-10/100) read from generated roots in the real on-disk formats, and from the real root when present."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import stat
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import scipy.io
import torch

import dhclib
import dhclib.data.vision as vd
from dhclib.data.fake import write_fake_data_root

N_TRAIN, N_TEST = 200, 100
IDX_STEMS = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
RESPLIT_OPTION = 'notmnist_split="test_resplit"'


# ---------------------------------------------------------------------------------------------------------------
# helpers: independent readers of the formats, and hand-written files
# ---------------------------------------------------------------------------------------------------------------
def raw_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def raw_pickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def write_pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def cifar10_root(root: Path, train_rows: np.ndarray, train_labels, test_rows: np.ndarray, test_labels) -> Path:
    """A hand-written CIFAR-10 root: the training rows split over five batches, bytes keys like the originals."""
    folder = root / "cifar-10-batches-py"
    for i, (rows, labels) in enumerate(zip(np.array_split(train_rows, 5), np.array_split(np.asarray(train_labels), 5))):
        write_pickle(folder / f"data_batch_{i + 1}", {b"batch_label": b"b", b"labels": labels.tolist(), b"data": rows})
    write_pickle(folder / "test_batch", {b"labels": list(test_labels), b"data": test_rows})
    return root


def notmnist_t10k_root(root: Path, counts, idx_helpers, seed: int = 0) -> Path:
    """A notMNIST root with only the two t10k files; ``counts[c]`` images of letter c, each image unique."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(10, dtype=np.uint8), counts)
    rng.shuffle(y)
    x = rng.integers(0, 256, size=(y.size, 28, 28), dtype=np.uint8)
    x[:, 0, :2] = np.stack([np.arange(y.size) // 256, np.arange(y.size) % 256], 1)  # unique rows by construction
    raw = root / "notMNIST" / "raw"
    idx_helpers.write_idx(raw / "t10k-images-idx3-ubyte", x, gz=True)
    idx_helpers.write_idx(raw / "t10k-labels-idx1-ubyte", y, gz=True)
    return root


def row_keys(x: torch.Tensor, y: torch.Tensor) -> list[bytes]:
    """One hashable key per (image, label), to compare splits as multisets of samples."""
    return [img.numpy().tobytes() + bytes([int(lab)]) for img, lab in zip(x, y)]


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory) -> Path:
    """Every dataset, generated in its real format: 200 train / 100 test samples each."""
    return write_fake_data_root(tmp_path_factory.mktemp("fake-vision"), n_train=N_TRAIN, n_test=N_TEST, seed=3)


@pytest.fixture
def serve(monkeypatch):
    """Replace the notMNIST download's urlopen: ``serve(contents)`` maps file name -> bytes (or an exception) and
    returns the list of URLs requested."""
    def install(contents: dict):
        requested = []

        def fake_urlopen(url, timeout=None):
            requested.append(url)
            body = contents[url.rsplit("/", 1)[1]]
            if isinstance(body, Exception):
                raise body
            return io.BytesIO(body)

        monkeypatch.setattr(vd, "urlopen", fake_urlopen)
        return requested

    return install


# ---------------------------------------------------------------------------------------------------------------
# registry and layout
# ---------------------------------------------------------------------------------------------------------------
def test_registry_and_expected_files():
    """Six datasets; expected_files gives torchvision's layout relative to the data root."""
    assert set(vd.VISION_DATASETS) == {"mnist", "notmnist", "fashion_mnist", "svhn", "cifar10", "cifar100"}
    assert vd.expected_files("notmnist") == [f"notMNIST/raw/{s}" for s in IDX_STEMS]
    assert vd.expected_files("fashion_mnist") == [f"FashionMNIST/raw/{s}" for s in IDX_STEMS]
    assert vd.expected_files("svhn") == ["SVHN/train_32x32.mat", "SVHN/test_32x32.mat"]
    assert vd.expected_files("cifar10") == [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)] + [
        "cifar-10-batches-py/test_batch"]
    assert vd.expected_files("cifar100") == ["cifar-100-python/train", "cifar-100-python/test"]
    with pytest.raises(dhclib.ConfigError, match="cifar10"):
        vd.expected_files("imagenet")


def test_fake_root_has_every_expected_file(fake_root):
    """The generated root is complete in the real layout (IDX files gzipped, as distributed)."""
    for name in vd.VISION_DATASETS:
        assert vd.missing_files(name, fake_root) == [], name
    for stem in IDX_STEMS:
        assert (fake_root / "notMNIST" / "raw" / f"{stem}.gz").is_file()
    assert raw_idx(fake_root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").shape == (N_TRAIN, 28, 28)
    assert gzip.decompress((fake_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").read_bytes())[:8] == (
        b"\x00\x00\x08\x01" + N_TEST.to_bytes(4, "big"))


def test_missing_files_with_and_without_root(tmp_path, monkeypatch):
    monkeypatch.delenv("DHC_DATA_DIR", raising=False)
    assert vd.missing_files("svhn", None) == vd.expected_files("svhn")
    assert vd.missing_files("cifar100", tmp_path) == vd.expected_files("cifar100")


# ---------------------------------------------------------------------------------------------------------------
# IDX sets
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST"),
                                         ("notmnist", "notMNIST")])
def test_idx_loaders_return_the_written_arrays(fake_root, name, folder):
    """uint8 (N, 28, 28) images and int64 labels, exactly the files' content; every class present."""
    d = vd.VISION_DATASETS[name](fake_root, download=False)
    raw = fake_root / folder / "raw"
    for key, stem in zip(("x_train", "y_train", "x_test", "y_test"), IDX_STEMS):
        np.testing.assert_array_equal(d[key].numpy(), raw_idx(raw / f"{stem}.gz"))
        assert d[key].device.type == "cpu"
    assert d["x_train"].dtype == torch.uint8 and d["x_train"].shape == (N_TRAIN, 28, 28)
    assert d["y_test"].dtype == torch.int64 and d["x_test"].shape == (N_TEST, 28, 28)
    assert torch.equal(d["y_train"].unique(), torch.arange(10))


# ---------------------------------------------------------------------------------------------------------------
# SVHN
# ---------------------------------------------------------------------------------------------------------------
def test_svhn_matches_mat_and_maps_10_to_0(fake_root):
    d = vd.load_svhn(fake_root, download=False)
    mat = scipy.io.loadmat(fake_root / "SVHN" / "train_32x32.mat")
    assert mat["X"].shape == (32, 32, 3, N_TRAIN) and mat["y"].shape == (N_TRAIN, 1)
    assert 10 in mat["y"] and 0 not in mat["y"]  # the generated file uses SVHN's convention
    assert d["x_train"].shape == (N_TRAIN, 3, 32, 32) and d["x_train"].dtype == torch.uint8
    assert d["x_test"].shape == (N_TEST, 3, 32, 32)
    np.testing.assert_array_equal(d["y_train"].numpy(), np.where(mat["y"][:, 0] == 10, 0, mat["y"][:, 0]))
    assert d["y_train"].dtype == torch.int64 and torch.equal(d["y_train"].unique(), torch.arange(10))


def test_svhn_channel_order(tmp_path):
    """X[row, col, channel, n] lands at x[n, channel, row, col]; label 10 -> 0, others unchanged."""
    x = np.zeros((32, 32, 3, 2), dtype=np.uint8)
    x[5, 7, 2, 1] = 255  # sample 1, blue, row 5, column 7
    x[0, 31, 0, 0] = 9  # sample 0, red, row 0, column 31
    (tmp_path / "SVHN").mkdir()
    for split in ("train", "test"):
        scipy.io.savemat(tmp_path / "SVHN" / f"{split}_32x32.mat", {"X": x, "y": np.array([[10], [3]], np.uint8)})
    d = vd.load_svhn(tmp_path, download=False)
    assert int(d["x_train"][1, 2, 5, 7]) == 255 and int(d["x_train"][0, 0, 0, 31]) == 9
    assert int(d["x_train"].sum()) == 255 + 9
    assert d["y_train"].tolist() == [0, 3]


def test_svhn_bad_labels_rejected(tmp_path):
    (tmp_path / "SVHN").mkdir()
    for split in ("train", "test"):
        scipy.io.savemat(tmp_path / "SVHN" / f"{split}_32x32.mat",
                         {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[11], [3]], np.uint8)})
    with pytest.raises(dhclib.DataNotFoundError, match="1..10"):
        vd.load_svhn(tmp_path, download=False)


# ---------------------------------------------------------------------------------------------------------------
# CIFAR
# ---------------------------------------------------------------------------------------------------------------
def test_cifar10_concatenates_batches_in_order(fake_root):
    d = vd.load_cifar10(fake_root, download=False)
    folder = fake_root / "cifar-10-batches-py"
    batches = [raw_pickle(folder / f"data_batch_{i}") for i in range(1, 6)]
    assert {b[b"batch_label"] for b in batches} == {f"training batch {i} of 5".encode() for i in range(1, 6)}
    expected_x = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32)
    np.testing.assert_array_equal(d["x_train"].numpy(), expected_x)
    np.testing.assert_array_equal(d["y_train"].numpy(), np.concatenate([b[b"labels"] for b in batches]))
    test = raw_pickle(folder / "test_batch")
    np.testing.assert_array_equal(d["y_test"].numpy(), test[b"labels"])
    assert d["x_train"].shape == (N_TRAIN, 3, 32, 32) and d["x_test"].shape == (N_TEST, 3, 32, 32)
    assert d["x_train"].dtype == torch.uint8 and d["y_train"].dtype == torch.int64
    assert len(test[b"filenames"]) == N_TEST


def test_cifar_channel_order(tmp_path):
    """A row is 1024 red, 1024 green, 1024 blue values, each plane row-major: index c*1024 + r*32 + col."""
    rows = np.zeros((10, 3072), dtype=np.uint8)
    rows[0, 1 * 1024 + 4 * 32 + 9] = 200  # sample 0, green, row 4, column 9
    rows[7, 2 * 1024 + 31 * 32 + 0] = 17  # sample 7, blue, row 31, column 0
    cifar10_root(tmp_path, rows, list(range(10)), rows[:2], [9, 0])
    d = vd.load_cifar10(tmp_path, download=False)
    assert int(d["x_train"][0, 1, 4, 9]) == 200 and int(d["x_train"][7, 2, 31, 0]) == 17
    assert int(d["x_train"].sum()) == 217
    assert d["y_train"].tolist() == list(range(10)) and d["y_test"].tolist() == [9, 0]


def test_cifar100_uses_fine_labels(fake_root):
    d = vd.load_cifar100(fake_root, download=False)
    train = raw_pickle(fake_root / "cifar-100-python" / "train")
    np.testing.assert_array_equal(d["y_train"].numpy(), train[b"fine_labels"])
    assert not np.array_equal(train[b"fine_labels"], train[b"coarse_labels"])
    assert torch.equal(d["y_train"].unique(), torch.arange(100))
    np.testing.assert_array_equal(d["x_train"].numpy(), train[b"data"].reshape(-1, 3, 32, 32))
    assert d["x_test"].shape == (N_TEST, 3, 32, 32) and d["x_test"].dtype == torch.uint8


def test_cifar_label_out_of_range_rejected(tmp_path):
    rows = np.zeros((10, 3072), dtype=np.uint8)
    cifar10_root(tmp_path, rows, [0] * 9 + [10], rows[:1], [0])
    with pytest.raises(dhclib.DataNotFoundError, match="labels"):
        vd.load_cifar10(tmp_path, download=False)


def test_corrupt_cifar_pickle_names_the_file(tmp_path):
    (tmp_path / "cifar-100-python").mkdir()
    (tmp_path / "cifar-100-python" / "train").write_bytes(b"\x80\x02}q\x00(")  # a pickle cut short
    (tmp_path / "cifar-100-python" / "test").write_bytes(b"")
    with pytest.raises(dhclib.DataNotFoundError) as info:
        vd.load_cifar100(tmp_path, download=False)
    assert "cifar-100-python" in str(info.value) and "cannot be read" in str(info.value)


# ---------------------------------------------------------------------------------------------------------------
# missing files and downloads through torchvision
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["svhn", "cifar10", "cifar100", "notmnist"])
def test_missing_files_name_directory_and_files(tmp_path, name):
    with pytest.raises(dhclib.DataNotFoundError) as info:
        vd.VISION_DATASETS[name](tmp_path, download=False)
    msg = str(info.value)
    assert str(tmp_path / Path(vd.expected_files(name)[0]).parent) in msg, msg
    for rel in vd.expected_files(name):
        assert Path(rel).name in msg, msg
    assert "never completed by a download" in msg  # a root given is the data asked for, download or not
    assert isinstance(info.value, FileNotFoundError)


def test_no_data_root_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("DHC_DATA_DIR", raising=False)
    with pytest.raises(dhclib.DataNotFoundError) as info:
        vd.load_cifar10(None, download=False)
    assert "DHC_DATA_DIR" in str(info.value) and "data_batch_1" in str(info.value)


@pytest.mark.parametrize("name,module,func", [
    ("svhn", "torchvision.datasets.svhn", "download_url"),
    ("cifar10", "torchvision.datasets.cifar", "download_and_extract_archive"),
    ("cifar100", "torchvision.datasets.cifar", "download_and_extract_archive"),
])
def test_offline_torchvision_download_is_reported(tmp_path, monkeypatch, isolated_cache, name, module, func):
    """Online users get torchvision's download into the cache (never the root); offline, one clear line."""
    import importlib

    targets = []

    def no_network(url, root, *args, **kwargs):
        targets.append(Path(root))
        raise URLError("[Errno -2] Name or service not known (simulated offline by the test)")

    monkeypatch.setattr(importlib.import_module(module), func, no_network)
    monkeypatch.delenv("DHC_DATA_DIR", raising=False)  # no root: the download is the way to the data
    with pytest.raises(dhclib.DataNotFoundError) as info:
        vd.VISION_DATASETS[name](None, download=True)
    msg = str(info.value)
    assert "failed" in msg and "URLError" in msg and "\n" not in msg
    assert Path(vd.expected_files(name)[0]).name in msg
    assert targets and all(isolated_cache / "download" in [t, *t.parents] for t in targets)


@pytest.mark.parametrize("name", ["svhn", "cifar10", "notmnist", "mnist"])
def test_a_root_given_that_lacks_the_files_is_an_error_never_a_download(tmp_path, monkeypatch, isolated_cache,
                                                                         name):
    """A typo in --data-dir must not silently read the download cache, or download: one line naming the files."""
    monkeypatch.setattr(vd, "_download_notmnist", lambda keys: pytest.fail("notMNIST downloaded"))
    root = tmp_path / "dat"  # the typo
    with pytest.raises(dhclib.DataNotFoundError) as info:
        vd.VISION_DATASETS[name](root, download=True)
    msg = str(info.value)
    assert str(root) in msg and "never completed by a download" in msg and "\n" not in msg
    assert Path(vd.expected_files(name)[0]).name in msg
    assert not (isolated_cache / "download").exists() and not root.exists()


# ---------------------------------------------------------------------------------------------------------------
# notMNIST: default split, resplit option, md5-checked download
# ---------------------------------------------------------------------------------------------------------------
def test_notmnist_missing_train_images_names_file_and_resplit_option(tmp_path):
    root = write_fake_data_root(tmp_path / "data", datasets=("notMNIST",), n_train=50, n_test=100)
    (root / "notMNIST" / "raw" / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(dhclib.DataNotFoundError) as info:
        vd.load_notmnist(root, download=False)
    msg = str(info.value)
    assert "Missing: train-images-idx3-ubyte[.gz]." in msg, msg
    assert str(root / "notMNIST" / "raw") in msg
    assert RESPLIT_OPTION in msg and "resplit_seed" in msg
    # The explicit option works on the same root: only the two t10k files are needed.
    d = vd.load_notmnist(root, download=False, resplit_seed=0)
    assert len(d["y_train"]) == 80 and len(d["y_test"]) == 20


def test_notmnist_resplit_stratified_counts(tmp_path, idx_helpers):
    """Per letter, round(fraction * count) go to test and the rest to train (unequal counts exercise rounding)."""
    counts = np.arange(5, 15)  # 5..14 per letter: 0.2 * count rounds both down (2.4 -> 2) and up (2.6 -> 3)
    root = notmnist_t10k_root(tmp_path, counts, idx_helpers)
    for fraction in (0.2, 0.5):
        d = vd.load_notmnist(root, download=False, resplit_seed=0, resplit_test_fraction=fraction)
        n_test = np.array([round(fraction * c) for c in counts])
        np.testing.assert_array_equal(np.bincount(d["y_test"].numpy(), minlength=10), n_test)
        np.testing.assert_array_equal(np.bincount(d["y_train"].numpy(), minlength=10), counts - n_test)
        assert d["x_train"].dtype == torch.uint8 and d["y_train"].dtype == torch.int64
        assert d["x_test"].shape == (n_test.sum(), 28, 28)


def test_notmnist_resplit_deterministic_disjoint_covering(tmp_path, idx_helpers, clear_memo):
    root = notmnist_t10k_root(tmp_path, [20] * 10, idx_helpers)
    a = vd.load_notmnist(root, download=False, resplit_seed=7)
    clear_memo.clear()  # a fresh computation, not the memo, must give the same split
    b = vd.load_notmnist(root, download=False, resplit_seed=7)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    c = vd.load_notmnist(root, download=False, resplit_seed=8)
    assert not torch.equal(a["x_test"], c["x_test"])
    raw = root / "notMNIST" / "raw"
    everything = row_keys(torch.from_numpy(raw_idx(raw / "t10k-images-idx3-ubyte.gz").copy()),
                          torch.from_numpy(raw_idx(raw / "t10k-labels-idx1-ubyte.gz").astype(np.int64)))
    train, test = row_keys(a["x_train"], a["y_train"]), row_keys(a["x_test"], a["y_test"])
    assert not set(train) & set(test)
    assert sorted(train + test) == sorted(everything)


@pytest.mark.parametrize("kwargs", [{"resplit_seed": -1}, {"resplit_seed": 1.5}, {"resplit_seed": True},
                                    {"resplit_seed": 0, "resplit_test_fraction": 0.0},
                                    {"resplit_seed": 0, "resplit_test_fraction": 1.0},
                                    {"resplit_seed": 0, "resplit_test_fraction": 0.01}])  # 0 of 10 per letter
def test_notmnist_resplit_bad_arguments(fake_root, kwargs):
    with pytest.raises(dhclib.ConfigError):
        vd.load_notmnist(fake_root, download=False, **kwargs)


def _fake_notmnist_gz(tmp_path) -> dict[str, bytes]:
    raw = write_fake_data_root(tmp_path / "source", datasets=("notMNIST",), n_train=30, n_test=50) / "notMNIST" / "raw"
    return {f"{stem}.gz": (raw / f"{stem}.gz").read_bytes() for stem in IDX_STEMS}


def test_notmnist_download_md5_checked_into_cache(tmp_path, monkeypatch, serve, isolated_cache, clear_memo):
    """Missing files are fetched from the cited mirror into cache_dir()/download/notMNIST/raw, kept only with the
    right md5, and reused later without another request."""
    files = _fake_notmnist_gz(tmp_path)
    monkeypatch.setattr(vd, "NOTMNIST_MD5", {n[:-3]: hashlib.md5(b).hexdigest() for n, b in files.items()})
    requested = serve(files)
    monkeypatch.delenv("DHC_DATA_DIR", raising=False)  # no root: the download is the way to the data
    d = vd.load_notmnist(None, download=True)
    assert len(d["y_train"]) == 30 and len(d["y_test"]) == 50
    assert sorted(requested) == sorted(vd.NOTMNIST_URL + n for n in files)
    assert vd.NOTMNIST_URL == "https://raw.githubusercontent.com/davidflanagan/notMNIST-to-MNIST/master/"
    dl = isolated_cache / "download" / "notMNIST" / "raw"
    assert sorted(p.name for p in dl.iterdir()) == sorted(files)
    clear_memo.clear()
    requested.clear()
    vd.load_notmnist(None, download=True)
    assert requested == []


def test_notmnist_resplit_downloads_only_the_test_files(tmp_path, monkeypatch, serve, isolated_cache):
    files = _fake_notmnist_gz(tmp_path)
    monkeypatch.setattr(vd, "NOTMNIST_MD5", {n[:-3]: hashlib.md5(b).hexdigest() for n, b in files.items()})
    requested = serve(files)
    monkeypatch.delenv("DHC_DATA_DIR", raising=False)
    d = vd.load_notmnist(None, download=True, resplit_seed=1)
    assert sorted(u.rsplit("/", 1)[1] for u in requested) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert len(d["y_train"]) == 40 and len(d["y_test"]) == 10


def test_notmnist_md5_mismatch_is_a_clear_error(tmp_path, serve, isolated_cache, monkeypatch):
    """A download whose md5 differs from the published one is discarded (no file, no temporary left) and reported."""
    serve({f"{stem}.gz": b"<html>rate limited</html>" for stem in IDX_STEMS})
    monkeypatch.delenv("DHC_DATA_DIR", raising=False)
    with pytest.raises(dhclib.DataNotFoundError) as info:
        vd.load_notmnist(None, download=True)
    msg = str(info.value)
    assert "md5 mismatch" in msg and "train-images-idx3-ubyte.gz" in msg and "d916d7283fce4d08db9867c640ec0042" in msg
    dl = isolated_cache / "download" / "notMNIST" / "raw"
    assert not dl.exists() or list(dl.iterdir()) == []


def test_notmnist_offline_download_mentions_resplit(tmp_path, serve, isolated_cache, monkeypatch):
    serve({f"{stem}.gz": URLError("simulated offline") for stem in IDX_STEMS})
    monkeypatch.delenv("DHC_DATA_DIR", raising=False)
    with pytest.raises(dhclib.DataNotFoundError) as info:
        vd.load_notmnist(None, download=True)
    msg = str(info.value)
    assert "failed" in msg and "URLError" in msg and RESPLIT_OPTION in msg and "\n" not in msg


# ---------------------------------------------------------------------------------------------------------------
# pad_to_rgb32
# ---------------------------------------------------------------------------------------------------------------
def test_pad_to_rgb32_centres_and_replicates():
    """docs/method.md (benchmarks): 28x28 zero-padded to 32x32 (2 pixels each side), replicated to 3 channels."""
    x = torch.randint(1, 256, (4, 28, 28), dtype=torch.uint8)  # no zeros inside, so the border is visible
    out = vd.pad_to_rgb32(x)
    assert out.shape == (4, 3, 32, 32) and out.dtype == torch.uint8
    for c in range(3):
        assert torch.equal(out[:, c, 2:30, 2:30], x)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert int(out[:, :, border].count_nonzero()) == 0
    out[0, 0, 5, 5] = 0  # a real copy: writing to one channel changes neither the input nor the others
    assert int(x[0, 3, 3]) != 0 and int(out[0, 1, 5, 5]) == int(x[0, 3, 3])


def test_pad_to_rgb32_rejects_other_shapes():
    with pytest.raises(ValueError, match="28, 28"):
        vd.pad_to_rgb32(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))


# ---------------------------------------------------------------------------------------------------------------
# read-only root, cache, memo
# ---------------------------------------------------------------------------------------------------------------
def test_data_root_is_never_written(tmp_path, isolated_cache, idx_helpers, clear_memo):
    """With the root made read-only (and its listing compared, since root ignores permissions), every loader works
    and writes its decoded cache under DHC_CACHE_DIR only."""
    root = write_fake_data_root(tmp_path / "ro", n_train=100, n_test=100, seed=5)
    before = idx_helpers.snapshot_tree(root)
    dirs = [Path(d) for d, _, _ in os.walk(root)]
    for d in dirs:
        d.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        for name, loader in vd.VISION_DATASETS.items():
            loader(root, download=False)
        vd.load_notmnist(root, download=False, resplit_seed=0)
    finally:
        for d in dirs:
            d.chmod(stat.S_IRWXU)
    assert idx_helpers.snapshot_tree(root) == before
    for tag in ("mnist", "fashionmnist", "notmnist", "notmnist-t10k", "svhn", "cifar10", "cifar100"):
        assert list(isolated_cache.glob(f"{tag}-????????????????.pt")), tag
    assert not [p for p in isolated_cache.iterdir() if ".tmp" in p.name]


def test_cache_is_reused_without_decoding(fake_root, isolated_cache, clear_memo, monkeypatch):
    first = {name: vd.VISION_DATASETS[name](fake_root, download=False) for name in ("svhn", "cifar10", "cifar100")}
    assert vd.load_svhn(fake_root, download=False) is first["svhn"]  # in-process memo
    clear_memo.clear()  # as in a new process

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(scipy.io, "loadmat", no_decoding)
    monkeypatch.setattr(vd.pickle, "load", no_decoding)
    for name, arrays in first.items():
        again = vd.VISION_DATASETS[name](fake_root, download=False)
        for key in arrays:
            assert torch.equal(again[key], arrays[key]), (name, key)


def test_cache_follows_changed_files(tmp_path, clear_memo):
    root = write_fake_data_root(tmp_path / "data", datasets=("CIFAR100",), n_train=100, n_test=100)
    first = vd.load_cifar100(root, download=False)
    path = root / "cifar-100-python" / "test"
    entry = raw_pickle(path)
    entry[b"fine_labels"] = [(label + 1) % 100 for label in entry[b"fine_labels"]]
    write_pickle(path, entry)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    clear_memo.clear()
    second = vd.load_cifar100(root, download=False)
    assert torch.equal(second["y_test"], (first["y_test"] + 1) % 100)


def test_corrupt_cache_is_rebuilt(fake_root, isolated_cache, clear_memo):
    first = vd.load_cifar10(fake_root, download=False)
    (cached,) = isolated_cache.glob("cifar10-*.pt")
    cached.write_bytes(b"not a torch file")
    clear_memo.clear()
    assert torch.equal(vd.load_cifar10(fake_root, download=False)["x_test"], first["x_test"])


def test_fake_data_is_seeded_and_learnable(tmp_path):
    """Same seed, same files; the class patterns make nearest-class-mean classification far above chance."""
    a = write_fake_data_root(tmp_path / "a", datasets=("CIFAR10",), n_train=200, n_test=100, seed=1)
    b = write_fake_data_root(tmp_path / "b", datasets=("CIFAR10",), n_train=200, n_test=100, seed=1)
    batch = Path("cifar-10-batches-py") / "test_batch"
    assert (a / batch).read_bytes() == (b / batch).read_bytes()
    d = vd.load_cifar10(a, download=False)
    x_tr, x_te = d["x_train"].flatten(1).float(), d["x_test"].flatten(1).float()
    means = torch.stack([x_tr[d["y_train"] == c].mean(0) for c in range(10)])
    accuracy = (torch.cdist(x_te, means).argmin(1) == d["y_test"]).float().mean()
    assert accuracy > 0.5
    with pytest.raises(ValueError, match="every class"):
        write_fake_data_root(tmp_path / "c", datasets=("CIFAR100",), n_train=50, n_test=100)


# ---------------------------------------------------------------------------------------------------------------
# the real data root (skipped when absent)
# ---------------------------------------------------------------------------------------------------------------
def _real_root(name: str, keys=None) -> Path:
    env = os.environ.get("DHC_DATA_DIR")
    if not env:
        pytest.skip(f"real {name} not available: DHC_DATA_DIR is unset (see README)")
    missing = [m for m in vd.missing_files(name, env) if keys is None or any(k in m for k in keys)]
    if missing:
        pytest.skip(f"real {name} not available: set DHC_DATA_DIR to a root with {', '.join(missing)}")
    return Path(env).expanduser()


def test_real_fashion_mnist(idx_helpers):
    root = _real_root("fashion_mnist")
    before = idx_helpers.snapshot_tree(root / "FashionMNIST")
    d = vd.load_fashion_mnist(root, download=False)
    assert d["x_train"].shape == (60000, 28, 28) and d["x_test"].shape == (10000, 28, 28)
    assert d["y_train"].bincount().tolist() == [6000] * 10 and d["y_test"].bincount().tolist() == [1000] * 10
    assert idx_helpers.snapshot_tree(root / "FashionMNIST") == before


def test_real_notmnist_resplit(idx_helpers):
    """The official test split alone: 10,000 letters (1,000 each) -> 8,000 / 2,000, i.e. 800 / 200 per letter."""
    root = _real_root("notmnist", keys=("t10k",))
    before = idx_helpers.snapshot_tree(root / "notMNIST")
    d = vd.load_notmnist(root, download=False, resplit_seed=0)
    assert d["x_train"].shape == (8000, 28, 28) and d["x_test"].shape == (2000, 28, 28)
    assert d["y_train"].bincount().tolist() == [800] * 10 and d["y_test"].bincount().tolist() == [200] * 10
    assert idx_helpers.snapshot_tree(root / "notMNIST") == before


def test_real_notmnist_without_train_images_asks_for_the_option():
    env = os.environ.get("DHC_DATA_DIR")
    if not env or vd.missing_files("notmnist", env) != ["notMNIST/raw/train-images-idx3-ubyte"]:
        pytest.skip("needs a real root whose notMNIST lacks exactly the training images (as ../shared/data)")
    with pytest.raises(dhclib.DataNotFoundError, match=RESPLIT_OPTION):
        vd.load_notmnist(env, download=False)
