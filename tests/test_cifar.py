"""CIFAR-10 through the one loader: Keras' cifar-10-batches-py/ folder and its cifar-10-python.tar.gz,
written small by the tests in the published format; every malformed file named with what is wrong; and
pickles that name anything but a NumPy array refused without running it."""

import gzip
import io
import os
import pickle
import re
import tarfile

import numpy as np
import pytest

from conftest import Python2Pickler, cifar_batch_bytes, small_cifar10, write_cifar10
from vae import data
from vae.data import DataError, load_dataset

RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's _reconstruct, which a pickled array names


def raises_data_error(*parts):
    """pytest.raises(DataError) whose message holds every part, in order."""
    return pytest.raises(DataError, match=".*".join(re.escape(str(part)) for part in parts))


def assert_loaded(result, batches):
    """`result` of load_dataset holds `batches`: the five training batches in order, then the test batch."""
    (x_train, y_train), (x_test, y_test) = result
    train = [batches[f"data_batch_{number}"] for number in range(1, 6)]
    expected_train = np.concatenate([images for images, _ in train])
    assert x_train.shape == expected_train.shape and x_train.dtype == np.float32
    np.testing.assert_array_equal(x_train, expected_train / np.float32(255))
    np.testing.assert_array_equal(y_train, np.concatenate([labels for _, labels in train]))
    np.testing.assert_array_equal(x_test, batches["test_batch"][0] / np.float32(255))
    assert y_test.dtype == np.int32 and y_test.tolist() == batches["test_batch"][1].tolist()


@pytest.fixture(scope="module")
def batches():
    return small_cifar10(per_batch=3, test=4)


@pytest.mark.parametrize("archive", [False, True])
def test_a_small_cifar10_loads_from_its_folder_and_from_its_archive(tmp_path, batches, archive):
    assert_loaded(load_dataset("cifar10", write_cifar10(tmp_path, batches, archive=archive)), batches)
    assert data.data_source("cifar10", tmp_path) == f"the folder {tmp_path} (from --data-dir)"


def test_the_batches_may_lie_in_the_folder_itself_and_the_archive_in_cifar10(tmp_path, batches):
    write_cifar10(tmp_path / "flat", batches)
    os.rename(tmp_path / "flat" / "cifar-10-batches-py", tmp_path / "batches")
    assert_loaded(load_dataset("cifar10", tmp_path / "batches"), batches)
    write_cifar10(tmp_path / "nested" / "cifar10", batches, archive=True)
    assert_loaded(load_dataset("cifar10", tmp_path / "nested"), batches)


def test_a_pixel_is_red_green_blue_from_the_three_planes_of_a_row(tmp_path):
    """A row of b"data" holds the red plane, then the green, then the blue, each row by row."""
    row = np.zeros((1, 3072), np.uint8)
    row[0, 0], row[0, 1024 + 1], row[0, 2048 + 32] = 255, 102, 51  # red at (0, 0), green at (0, 1), blue at (1, 0)
    batch = {b"data": row, b"labels": [3]}
    content = cifar_batch_bytes(batch=batch)
    write_cifar10(tmp_path, {name: content for name in data.CIFAR_BATCHES})
    (x_train, y_train), _ = load_dataset("cifar10", tmp_path)
    assert x_train.shape == (5, 32, 32, 3) and y_train.tolist() == [3] * 5
    assert x_train[0, 0, 0].tolist() == [1.0, 0.0, 0.0]
    np.testing.assert_allclose(x_train[0, 0, 1], [0.0, 0.4, 0.0])
    np.testing.assert_allclose(x_train[0, 1, 0], [0.0, 0.0, 0.2])


def test_keras_download_of_cifar10_is_flattened_and_checked(monkeypatch, batches):
    import keras

    def load_data():
        images, labels = batches["test_batch"]
        return (images, labels[:, None]), (images, labels[:, None])  # Keras gives labels as (N, 1)

    monkeypatch.delenv("VAE_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "REPO_DATA_DIR", data.REPO_DATA_DIR / "no-such-folder")
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", load_data)
    (x_train, y_train), _ = load_dataset("cifar10")
    assert x_train.shape == (4, 32, 32, 3) and y_train.tolist() == batches["test_batch"][1].tolist()


# ---------------------------------------------------------------------------
# Malformed files: one DataError each, naming the file and what is wrong


def with_batch(batches, name, content):
    """The batches with batch `name` replaced by `content` (bytes)."""
    return {**batches, name: content}


def forged_array(state):
    """An object that pickles as a NumPy array whose __setstate__ gets `state`, whatever it is."""

    class Forged:
        def __reduce__(self):
            return RECONSTRUCT, (np.ndarray, (0,), b"b"), state

    return Forged()


@pytest.mark.parametrize("batch, message", [
    ({b"data": np.zeros((2, 1000), np.uint8), b"labels": [0, 1]}, "wrong shape: expected (N, 3072) with N ≥ 1, found (2, 1000)"),
    ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "wrong dtype: expected uint8 pixels (u1), found 'f4'"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "label values out of range 0..9: 1 bad, e.g. 10 at index 1"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "image and label counts disagree: 2 images, 1 labels"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": b"\x00\x01"}, "[b'labels']: not a list of integers"),
    ({b"data": np.zeros((2, 3072), np.uint8)}, "missing key(s) b'labels' of a CIFAR-10 batch"),
    ([np.zeros((2, 3072), np.uint8)], "not a CIFAR-10 batch: the pickle holds a list, not a dict"),
    ({b"data": forged_array((1, (10**12, 3072), np.dtype("u1"), False, b"\x00" * 3072)), b"labels": [0]},
     "truncated or padded: shape (1000000000000, 3072) needs 3,072,000,000,000,000 bytes, the pickle holds 3,072"),
])
def test_a_malformed_batch_is_named_with_what_is_wrong(tmp_path, batches, batch, message):
    write_cifar10(tmp_path, with_batch(batches, "data_batch_2", cifar_batch_bytes(batch=batch)))
    with raises_data_error(tmp_path / "cifar-10-batches-py" / "data_batch_2", message):
        load_dataset("cifar10", tmp_path)


def test_a_forged_object_array_that_crashes_numpys_own_unpickling_is_refused(tmp_path, batches):
    """NumPy's ndarray.__setstate__ given this state allocates 8 GB and crashes; here it is only read."""
    batch = {b"data": forged_array((1, (10**9,), np.dtype("O"), False, [])), b"labels": []}
    write_cifar10(tmp_path, with_batch(batches, "test_batch", cifar_batch_bytes(batch=batch)))
    with raises_data_error("test_batch [b'data']: wrong dtype: expected uint8 pixels (u1), found 'O8'"):
        load_dataset("cifar10", tmp_path)


def test_a_pickle_naming_anything_else_is_refused_and_never_run(tmp_path, batches):
    marker = tmp_path / "ran"
    hostile = b"cposix\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."  # os.system("touch ...")
    write_cifar10(tmp_path, with_batch(batches, "data_batch_1", hostile))
    with raises_data_error("data_batch_1: refused to unpickle posix.system: a CIFAR-10 batch holds a NumPy array"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()
    # Another class than numpy's, even a harmless one, is refused the same way.
    from collections import OrderedDict
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(OrderedDict(data=np.zeros((1, 3072), np.uint8), labels=[0]))
    write_cifar10(tmp_path, with_batch(batches, "data_batch_1", buffer.getvalue()))
    with raises_data_error("data_batch_1: refused to unpickle collections.OrderedDict"):
        load_dataset("cifar10", tmp_path)


@pytest.mark.parametrize("content, message", [
    (b"", "not a valid pickle (EOFError"),
    (b"not a pickle at all\n", "not a valid pickle (UnpicklingError"),
    (None, "not a valid pickle (UnpicklingError: pickle data was truncated)"),  # cut in half
    (b"extra", "5 extra bytes after the pickle"),  # appended to a good batch
])
def test_a_truncated_or_foreign_file_is_not_a_valid_pickle(tmp_path, batches, content, message):
    good = cifar_batch_bytes(*batches["test_batch"])
    content = good[:len(good) // 2] if content is None else good + content if content == b"extra" else content
    write_cifar10(tmp_path, with_batch(batches, "test_batch", content))
    with raises_data_error(tmp_path / "cifar-10-batches-py" / "test_batch", message):
        load_dataset("cifar10", tmp_path)


def test_a_missing_batch_file_or_archive_member_is_named(tmp_path, batches):
    partial = {name: value for name, value in batches.items() if name != "test_batch"}
    write_cifar10(tmp_path / "folder", partial)
    with raises_data_error("missing file(s) in", tmp_path / "folder" / "cifar-10-batches-py" / "test_batch",
                           "the other CIFAR-10 batches are there"):
        load_dataset("cifar10", tmp_path / "folder")
    write_cifar10(tmp_path / "archive", partial, archive=True)
    with raises_data_error("cifar-10-python.tar.gz: missing member(s) cifar-10-batches-py/test_batch"):
        load_dataset("cifar10", tmp_path / "archive")
    (tmp_path / "empty").mkdir()
    with raises_data_error("no cifar10 files found in data folder", "data_batch_1", "cifar-10-python.tar.gz"):
        load_dataset("cifar10", tmp_path / "empty")


def test_a_damaged_archive_and_a_bad_member_are_named(tmp_path, batches):
    write_cifar10(tmp_path, batches, archive=True)
    archive = tmp_path / "cifar-10-python.tar.gz"
    whole = archive.read_bytes()
    archive.write_bytes(whole[:len(whole) // 2])
    with raises_data_error(archive, "unreadable tar.gz archive"):
        load_dataset("cifar10", tmp_path)
    archive.write_bytes(b"PK\x03\x04 not a tar.gz")
    with raises_data_error(archive, "unreadable tar.gz archive"):
        load_dataset("cifar10", tmp_path)
    write_cifar10(tmp_path, with_batch(batches, "data_batch_3", b"garbage"), archive=True)
    with raises_data_error(f"{archive} [cifar-10-batches-py/data_batch_3]: not a valid pickle"):
        load_dataset("cifar10", tmp_path)
    with tarfile.open(archive, "w:gz") as tar:  # a symlink where a batch should be
        link = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with raises_data_error("[cifar-10-batches-py/data_batch_1]: is not a regular file in the archive"):
        load_dataset("cifar10", tmp_path)


def test_too_large_files_and_members_are_refused_before_reading(tmp_path, batches, monkeypatch):
    write_cifar10(tmp_path / "folder", batches)
    big = tmp_path / "folder" / "cifar-10-batches-py" / "data_batch_4"
    with open(big, "wb") as file:
        file.truncate(data.MAX_DATA_BYTES + 1)  # sparse: no disk used
    with raises_data_error(big, "too large: 100,000,001 bytes"):
        load_dataset("cifar10", tmp_path / "folder")
    write_cifar10(tmp_path / "archive", batches, archive=True)
    monkeypatch.setattr(data, "MAX_DATA_BYTES", 1000)
    with raises_data_error("cifar-10-batches-py/", "too large:", "bytes (MAX_DATA_BYTES)"):
        load_dataset("cifar10", tmp_path / "archive")
    monkeypatch.setattr(data, "MAX_ARCHIVE_BYTES", 1000)
    with raises_data_error("cifar-10-python.tar.gz: too large:", "(MAX_ARCHIVE_BYTES)"):
        load_dataset("cifar10", tmp_path / "archive")


def test_the_restricted_unpickler_reads_the_published_format_only(batches):
    """The published batches: protocol 2, NumPy 1's names, Python 2's str; a NumPy 2 pickle of protocol 5
    names numpy._core.numeric._frombuffer, which a CIFAR-10 batch never does."""
    content = cifar_batch_bytes(*batches["test_batch"])
    assert content.startswith(b"\x80\x02}") and b"cnumpy.core.multiarray\n_reconstruct\n" in content
    images, labels = data._parse_cifar_batch(content, "published")
    assert images.shape == (4, 32, 32, 3) and labels.tolist() == batches["test_batch"][1].tolist()
    modern = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}, protocol=5)
    with raises_data_error("modern: refused to unpickle numpy._core.numeric._frombuffer"):
        data._parse_cifar_batch(modern, "modern")


# ---------------------------------------------------------------------------
# Hostile values in a pickle: the refusal itself stays one bounded line


def test_a_5000_digit_integer_in_a_pickle_is_described_not_written(tmp_path, batches):
    """Python refuses to write an integer of more than 4,300 digits: the message describes it."""
    huge = 10**5000
    for state, message in [
        ((1, (huge, 3072), np.dtype("u1"), False, b"\x00" * 3072),
         "truncated or padded: shape (an integer of about 5,000 digits, 3072) needs about 10^5003 bytes"),
        ((1, (1, 3072), huge, False, b"\x00" * 3072),
         "wrong dtype: expected uint8 pixels (u1), found an integer of about 5,000 digits"),
    ]:
        batch = {b"data": forged_array(state), b"labels": [0]}
        write_cifar10(tmp_path, with_batch(batches, "data_batch_5", cifar_batch_bytes(batch=batch)))
        with raises_data_error("data_batch_5 [b'data']: " + message) as refused:
            load_dataset("cifar10", tmp_path)
        assert len(str(refused.value)) < 300 + len(str(tmp_path))


def test_a_100000_deep_tuple_in_a_pickle_is_described_not_written(tmp_path, batches):
    """repr of a 100,000-deep tuple overflows; the pickle builds one cheaply (an empty tuple, then TUPLE1s)."""
    batch = {b"data": forged_array((1, ("DEEPMARK",), np.dtype("u1"), False, b"")), b"labels": [0]}
    content = cifar_batch_bytes(batch=batch)
    string = b"X\x08\x00\x00\x00DEEPMARK"  # BINUNICODE "DEEPMARK"
    assert content.count(string) == 1
    deep = content.replace(string, pickle.EMPTY_TUPLE + pickle.TUPLE1 * 100_000)
    write_cifar10(tmp_path, with_batch(batches, "test_batch", deep))
    with raises_data_error("test_batch [b'data']: wrong shape: expected (N, 3072) with N ≥ 1, "
                           "found ((a tuple of 1 item,),)"):
        load_dataset("cifar10", tmp_path)


def test_a_long_class_name_in_a_pickle_is_cut_in_the_message(tmp_path, batches):
    hostile = b"cposix\nsystem" + b"x" * 100_000 + b"\n."
    write_cifar10(tmp_path, with_batch(batches, "data_batch_1", hostile))
    with raises_data_error("refused to unpickle posix.systemxxx") as refused:
        load_dataset("cifar10", tmp_path)
    assert len(str(refused.value)) < 400 + len(str(tmp_path))


# ---------------------------------------------------------------------------
# The archive is parsed as a stream: extended tar headers are bounded before they are read


def tar_header(name, size, kind=tarfile.REGTYPE):
    """One 512-byte ustar header."""
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(tarfile.USTAR_FORMAT)


def padded(data):
    return data + bytes(-len(data) % 512)


def pax_record(key, value):
    """A pax record "LENGTH key=value\\n", whose LENGTH counts its own digits."""
    body = f" {key}={value}\n".encode()
    length = len(body) + len(str(len(body)))
    length = len(body) + len(str(length))
    return str(length).encode() + body


def write_raw_archive(folder, batches, extended_kind, extended_data):
    """folder/cifar-10-python.tar.gz holding `batches`, the first preceded by one extended header."""
    members = padded(tar_header("././@Extended", len(extended_data), extended_kind)) + padded(extended_data)
    for name, (images, labels) in batches.items():
        content = cifar_batch_bytes(images, labels)
        members += tar_header(f"cifar-10-batches-py/{name}", len(content)) + padded(content)
    (folder / "cifar-10-python.tar.gz").write_bytes(gzip.compress(members + bytes(1024), compresslevel=1))


@pytest.mark.parametrize("kind, data, message", [
    (tarfile.XHDTYPE, pax_record("comment", "x" * 1_000_000),
     "refused: an extended tar header (type 'x', a long name or pax header) of {size} bytes at byte 0 "
     "unpacked, more than the 65,536 bytes (MAX_TAR_HEADER_BYTES)"),
    (tarfile.XHDTYPE, pax_record("size", "1" * 200_000),
     "refused: an extended tar header (type 'x', a long name or pax header) of {size} bytes"),
    (tarfile.GNUTYPE_LONGNAME, b"cifar-10-batches-py/" + b"n" * 1_000_000 + b"\0",
     "refused: an extended tar header (type 'L', a long name or pax header) of {size} bytes"),
    (tarfile.XHDTYPE, pax_record("size", "1" * 30_000),
     "unreadable tar.gz archive (the pax header at byte 0 unpacked gives a size of 30,000 characters, "
     "not a number of at most 20 digits)"),
])
def test_a_huge_extended_tar_header_is_refused_with_one_message(tmp_path, batches, kind, data, message):
    write_raw_archive(tmp_path, batches, kind, data)
    message = message.replace("{size}", f"{len(data):,}")
    with raises_data_error(tmp_path / "cifar-10-python.tar.gz", message) as refused:
        load_dataset("cifar10", tmp_path)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("tar_format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_archives_with_long_names_from_tarfile_load(tmp_path, batches, tar_format):
    """A member with a 300-character name makes tarfile write a pax header or a GNU long name before it."""
    files = {f"cifar-10-batches-py/{name}": cifar_batch_bytes(*value) for name, value in batches.items()}
    files = {"cifar-10-batches-py/" + "long" * 75: b"an unrelated member", **files}
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz", format=tar_format) as tar:
        for name, content in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
    assert_loaded(load_dataset("cifar10", tmp_path), batches)


def test_a_pax_header_may_name_a_batch(tmp_path, batches):
    """The pax record "path" names the member after it, whatever its header's own name field says."""
    members = b""
    for name, (images, labels) in batches.items():
        content = cifar_batch_bytes(images, labels)
        pax = pax_record("path", f"cifar-10-batches-py/{name}")
        members += padded(tar_header("pax", len(pax), tarfile.XHDTYPE) + pax)
        members += tar_header("short", len(content)) + padded(content)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(gzip.compress(members + bytes(1024)))
    assert_loaded(load_dataset("cifar10", tmp_path), batches)


def test_the_unpacked_archive_is_capped_and_a_damaged_header_named(tmp_path, batches, monkeypatch):
    members = tar_header("cifar-10-batches-py/readme.html", 2_000_000) + bytes(2_000_000)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(gzip.compress(members + bytes(1024)))
    monkeypatch.setattr(data, "MAX_ARCHIVE_BYTES", 1_000_000)  # the compressed archive is a few kB
    with raises_data_error("cifar-10-python.tar.gz [cifar-10-batches-py/readme.html]: too large: the archive's "
                           "members reach past 1,000,000 bytes (MAX_ARCHIVE_BYTES) unpacked"):
        load_dataset("cifar10", tmp_path)
    header = bytearray(tar_header("cifar-10-batches-py/test_batch", 0))
    header[0] ^= 1  # its checksum no longer matches
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(gzip.compress(bytes(header) + bytes(1024)))
    with raises_data_error("cifar-10-python.tar.gz: unreadable tar.gz archive (no valid tar header at byte 0 "
                           "unpacked: its checksum does not match)"):
        load_dataset("cifar10", tmp_path)
