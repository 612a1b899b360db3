"""The benchmark machinery on tiny sizes: it builds, measures, explains, reports.

No timing is asserted: these tests check that every case yields numbers or an
explained error, that the JSON layout is stable, and that the chart is written.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from parallelpickle import cli
from parallelpickle._bench import answers, compression, payloads, pools, report, serializers
from parallelpickle._bench.suite import Config, Results, run_suite
from parallelpickle._bench.timing import Stat, rotated

TINY = payloads.TINY


@pytest.fixture(scope="module")
def results() -> Results:
    # loky, mpire and joblib register reducers process-wide when imported; they
    # run in a child process below, so the rest of the test session keeps stdlib's.
    return run_suite(Config(TINY, workers=2, progress=False, third_party=False))


@pytest.fixture(scope="module")
def found(results: Results) -> list[answers.Answer]:
    return answers.answer_all(results)


def test_stat_median_and_spread() -> None:
    s = Stat.of([3.0, 1.0, 2.0, 10.0, 4.0])
    assert (s.median, s.min, s.max, s.n) == (3.0, 1.0, 10.0, 5)
    assert s.q1 == 2.0 and s.q3 == 4.0
    assert s.spread == pytest.approx(2.0 / 3.0)
    with pytest.raises(ValueError, match="samples"):
        Stat.of([])


def test_rotation_changes_who_goes_first() -> None:
    items = ["a", "b", "c"]
    assert [rotated(items, r)[0] for r in range(4)] == ["a", "b", "c", "a"]
    assert sorted(rotated(items, 2)) == items


def test_catalogue_builds_every_payload_of_the_issue() -> None:
    cat = payloads.catalogue(TINY)
    names = [p.name for p in cat]
    assert names == [
        "dict", "floats", "array_small", "array_big", "instances", "main_instances", "records",
        "model", "tutorial", "dogs", "module_fn", "main_fn", "lambda", "closure",
    ]  # fmt: skip
    assert len({p.label for p in cat}) == len(cat)
    by_name = {p.name: p for p in cat}
    assert by_name["dogs"].obj["Laika"] == 16
    assert by_name["tutorial"].obj["a"][3] == 4 + 6j
    assert len(by_name["dict"].obj) == TINY.items
    assert by_name["main_instances"].obj[0].__class__.__module__ == "__main__"
    assert by_name["array_big"].obj.nbytes == TINY.big_array_bytes


def test_same_compares_by_value_and_notices_differences() -> None:
    cat = {p.name: p for p in payloads.catalogue(TINY)}
    model = cat["model"].obj
    assert payloads.same(model, pickle.loads(pickle.dumps(model)))
    assert not payloads.same([1, 2], (1, 2))
    assert not payloads.same({"a": 1.0}, {"a": 1.5})
    assert payloads.same_behaviour(cat["lambda"], lambda x: x * 3 + 1)
    assert not payloads.same_behaviour(cat["lambda"], lambda x: x)


def test_pure_python_pickler_is_the_stdlib_one_even_after_dill() -> None:
    import dill  # noqa: F401 - importing dill extends pickle._Pickler's table process-wide

    pure = next(s for s in serializers.default_serializers() if s.name == "pickle-py")
    with pytest.raises(pickle.PicklingError):
        pure.dumps(payloads.LAMBDA)
    assert pure.loads(pure.dumps(payloads.module_function)) is payloads.module_function


def test_every_serializer_case_has_numbers_or_an_explained_error(results: Results) -> None:
    expected = len(results.payloads) * len(results.serializers)
    assert len(results.ser_rows) == expected
    for row in results.ser_rows:
        if row.ok:
            assert row.size_bytes and row.size_bytes > 0
            assert len(row.dumps) == len(row.loads) == TINY.rounds
            assert all(t > 0 for t in row.dumps + row.loads)
            assert row.roundtrip in ("equal", "differs")
        else:
            assert row.stage in ("dump", "load") and row.error and ":" in row.error
    rows = {(r.payload, r.serializer): r for r in results.ser_rows}
    assert not rows["lambda", serializers.BASELINE].ok
    assert "PicklingError" in (rows["lambda", serializers.BASELINE].error or "")
    assert rows["lambda", "cloudpickle"].roundtrip == "equal"
    assert rows["closure", "dill"].roundtrip == "equal"
    assert "not JSON serializable" in (rows["array_small", "json"].error or "")
    assert rows["dogs", "json"].roundtrip == "equal"


def test_compression_rows_and_cap() -> None:
    cat = payloads.catalogue(TINY)
    samples = compression.prepare(cat, cap=1024)
    assert {s.payload for s in samples} >= {"dict", "floats", "records"}
    assert "lambda" not in {s.payload for s in samples} and "main_instances" not in {s.payload for s in samples}
    rows = compression.run_compression(samples[:2], rounds=2, min_time=0.0)
    assert len(rows) == 2 * len(compression.CODECS)
    for r in rows:
        assert r.input_bytes == 1024 and r.sampled
        assert 0 < r.ratio < 1.2 and len(r.compress) == 2 and r.stat("decompress").median > 0


class _Missing(pools.StdlibRunner):
    name = "missing"
    needs = "no_such_module_for_the_bench"


def test_pool_rows_carry_numbers_errors_and_stats() -> None:
    works = [w for w in pools.workloads(TINY) if w.name in ("tiny", "lambda")]
    runners: list[pools.Runner] = [pools.OurRunner(2, "auto"), pools.StdlibRunner(2), _Missing(2)]
    rows = {(r.workload, r.runner): r for r in pools.run_pools(works, runners, repeats=1)}
    auto = rows["lambda", "pp:auto"]
    assert auto.ok and auto.tasks_per_s() and auto.serialization_share() is not None
    assert rows["tiny", "mp.Pool"].ok and rows["tiny", "mp.Pool"].serialization_share() is None
    assert "PicklingError" in (rows["lambda", "mp.Pool"].error or "")
    assert (rows["tiny", "missing"].error or "").startswith("NotInstalled")


def test_full_tiny_suite_covers_every_runner(results: Results) -> None:
    assert len(results.pool_rows) == len(results.workloads) * len(results.runner_names)
    assert {"pp:pickle", "pp:dill", "pp:cloudpickle", "pp:auto", "mp.Pool", "pathos"} <= set(results.runner_names)
    for row in results.pool_rows:
        assert row.ok or row.error, (row.workload, row.runner)
    arrays = [r for r in results.pool_rows if r.workload == "arrays" and r.ok]
    assert arrays and all(r.mb_per_s() for r in arrays)


TOP_KEYS = {
    "schema", "created", "seconds", "machine", "python", "packages", "settings", "payloads",
    "serializer_names", "workloads", "serializers", "compression", "pools", "answers",
}  # fmt: skip
ROW_KEYS = {
    "serializers": {
        "payload", "serializer", "ok", "error", "stage", "size_bytes", "roundtrip", "dumps_s", "loads_s",
        "time_vs_baseline",
    },
    "compression": {
        "payload", "codec", "input_bytes", "sampled", "compressed_bytes", "ratio", "compress_s", "decompress_s",
    },
    "pools": {
        "workload", "runner", "ok", "error", "tasks", "bytes", "wall_s", "tasks_per_s", "mb_per_s",
        "ratio_to_best", "serialization_share",
    },
    "answers": {"claim", "verdict", "summary", "figures"},
}  # fmt: skip
STAT_KEYS = {"median", "q1", "q3", "min", "max", "n"}


def test_json_schema_is_stable(results: Results, found: list[answers.Answer]) -> None:
    doc: dict[str, Any] = json.loads(json.dumps(report.to_json(results, found)))
    assert set(doc) == TOP_KEYS
    assert doc["schema"] == report.SCHEMA == "parallelpickle.bench/1"
    assert {"version", "implementation"} <= set(doc["python"])
    assert doc["packages"]["numpy"] and doc["packages"]["dill"]
    for section, keys in ROW_KEYS.items():
        assert doc[section], section
        for row in doc[section]:
            assert set(row) == keys, section
    ok_ser = next(r for r in doc["serializers"] if r["ok"])
    assert set(ok_ser["dumps_s"]) == STAT_KEYS
    assert set(next(r for r in doc["pools"] if r["ok"])["wall_s"]) == STAT_KEYS


def test_answers_cover_the_five_claims(found: list[answers.Answer]) -> None:
    assert [a.claim for a in found] == [
        "cPickle is up to 1000x faster than pickle",
        "JSON is much faster than pickle",
        "gzip files are about twice as large as bzip2, bzip2 is a bit slower",
        "dill is slower than pickle",
        "for small objects you won't notice",
    ]
    for a in found:
        assert a.verdict in ("holds", "partly", "does not hold"), a
        assert a.figures and any(ch.isdigit() for ch in a.summary)


def test_answers_say_when_a_section_did_not_run() -> None:
    empty = Results(Config(TINY, only=("pools",), progress=False))
    assert {a.verdict for a in answers.answer_all(empty)} == {"not measured"}


def test_text_report_names_every_payload_and_error(results: Results, found: list[answers.Answer]) -> None:
    out = report.text(results, found)
    for heading in ("Serializers: dumps+loads time", "Compression", "Pools", "Answers", "Errors"):
        assert heading in out
    for p in results.payloads:
        assert p.label in out
    assert "x[1]" in out and "[1] dump: " in out


def test_plot_writes_a_png(results: Results, tmp_path: Path) -> None:
    path = tmp_path / "bench.png"
    report.plot(results, str(path))
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 20_000


def test_cli_tiny_run_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b.json"
    code = cli.main(["bench", "--scale", "tiny", "--no-progress", "--only", "serializers", "--json", str(out)])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["settings"]["sections"] == ["serializers"] and doc["pools"] == []
    assert "Serializers" in capsys.readouterr().out


def test_cli_rejects_bad_options_before_running(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--workers", "0", "--no-progress"]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err
    assert cli.main(["bench", "--no-progress", "--json", "/no/such/folder/b.json"]) == 2
    assert "--json /no/such/folder/b.json: cannot write there" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--only", "everything"])
    assert exc.value.code == 2


def test_third_party_pools_run_in_a_child(tmp_path: Path) -> None:
    out = tmp_path / "pools.json"
    cmd = [sys.executable, "-m", "parallelpickle", "bench", "--scale", "tiny", "--no-progress", "--only", "pools"]
    subprocess.run([*cmd, "--json", str(out)], check=True, capture_output=True, timeout=300)
    rows = json.loads(out.read_text())["pools"]
    runners = {row["runner"] for row in rows}
    assert {"loky", "mpire", "joblib"} <= runners, runners
    for row in rows:  # numbers, or the reason there are none (such as "not installed")
        assert row["ok"] or row["error"], row
