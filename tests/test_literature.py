"""benchmarks/literature.py --save without training: rows merged into the results file under a lock, rows of
another protocol never dropped without --fresh, and a --help that quotes only recorded times."""

import importlib.util
import json
import threading

import pytest

from conftest import REPO_ROOT
from vae.saving import save_json

spec = importlib.util.spec_from_file_location("literature", REPO_ROOT / "benchmarks" / "literature.py")
literature = importlib.util.module_from_spec(spec)
spec.loader.exec_module(literature)

PROTOCOL = "dynamically binarized MNIST; ln p(x) in nats per image over the 10,000 test images"


def row(latent_dim, value=-90.0):
    return {"latent_dim": latent_dim, "epochs": 60, "seconds_training": 10.0, "seconds_evaluating": 20.0,
            "iw_log_likelihood": value}


def result(*rows, protocol=PROTOCOL):
    return {"benchmark": "literature", "protocol": protocol, "rows": list(rows), "device": "CPU", "cores": 2}


def test_a_merge_keeps_the_other_latent_sizes_and_replaces_its_own():
    merged = literature.merged(result(row(20, -95.0), row(5)), result(row(2), row(20, -91.0)))
    assert [(r["latent_dim"], r["iw_log_likelihood"]) for r in merged["rows"]] == [(2, -90.0), (5, -90.0), (20, -91.0)]


def test_rows_of_another_protocol_are_dropped_only_when_asked():
    earlier = result(row(2), row(5), protocol="on the first 1,000 test images")
    with pytest.raises(literature.OtherProtocol, match="2 rows measured with another protocol"):
        literature.merged(earlier, result(row(20)))
    assert [r["latent_dim"] for r in literature.merged(earlier, result(row(20)), keep_earlier=False)["rows"]] == [20]


def test_save_with_another_protocol_stops_at_once_naming_fresh(tmp_path, monkeypatch, capsys):
    path = tmp_path / "literature.json"
    save_json(result(row(2), row(5), row(20), row(50)), path)
    monkeypatch.setattr(literature, "RESULTS", path)
    monkeypatch.setattr(literature, "load_mnist", lambda *args: pytest.fail("the data was loaded"))
    with pytest.raises(SystemExit):
        literature.main(["--save", "--test-images", "1000", "--latent-dims", "20"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith(f"--save would drop the 4 rows of {path}, measured with another protocol ({PROTOCOL!r}); "
                          f"give --fresh to replace them")
    assert len(json.loads(path.read_text())["rows"]) == 4


def test_saves_at_once_each_keep_their_row(tmp_path):
    path = tmp_path / "literature.json"
    save_json(result(row(2)), path)
    start = threading.Barrier(8)

    def save(latent_dim):
        start.wait()
        literature.save_merged(result(row(latent_dim)), path)

    threads = [threading.Thread(target=save, args=(latent_dim,)) for latent_dim in range(10, 18)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r["latent_dim"] for r in json.loads(path.read_text())["rows"]] == [2, *range(10, 18)]


def test_the_help_quotes_only_recorded_times(tmp_path):
    path = tmp_path / "literature.json"
    assert literature.recorded_times(path).startswith("No times are recorded yet")
    save_json(result(row(2), row(20)), path)
    assert literature.recorded_times(path) == (
        "Times recorded in literature.json (CPU, 2 cores): latent 2, 60 epochs: 10 s training, 20 s evaluating; "
        "latent 20, 60 epochs: 10 s training, 20 s evaluating; 60 s in all.")
