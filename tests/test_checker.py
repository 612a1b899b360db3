"""The checker: it agrees with the catalogue, and the catalogue agrees with reality.

``tests/checker_catalogue.py`` states a verdict per transport for each case;
here the checker must reproduce every one, and a real round trip (dump here,
load in a spawned and in a forked child, all cases in one child each) must
agree on which ones fail, so neither can drift. Then: paths, explain(),
the cache, verify=True, ``__main__`` scripts, and the CLI.
"""

from __future__ import annotations

import json
import multiprocessing
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from parallelpickle import Problem, Report, check, explain
from tests import checker_catalogue as cat

ROOT = Path(__file__).resolve().parent.parent
# forkserver workers prepare like spawned ones (they re-import the main module), so the
# catalogue's spawn column holds for them too; that is checked against reality as well.
METHODS = [m for m in ("fork", "spawn", "forkserver") if m in multiprocessing.get_all_start_methods()]


def _expected(case: cat.Case, method: str) -> dict[str, str]:
    return case.fork if method == "fork" else case.spawn


def test_catalogue_is_large_and_covers_every_verdict() -> None:
    assert len(cat.CASES) >= 100
    assert len({c.name for c in cat.CASES}) == len(cat.CASES)
    seen = {v for c in cat.CASES for v in c.spawn.values()}
    assert seen == {"ok", "lossy", "fails"}


@pytest.mark.parametrize("case", cat.CASES, ids=[c.name for c in cat.CASES])
def test_checker_matches_catalogue(case: cat.Case) -> None:
    fn, args, kwargs = case.build()
    report = check(fn, *args, start_method=METHODS, **kwargs)
    got = {m: {t: report.matrix[t][m] for t in cat.TRANSPORTS} for m in METHODS}
    want = {m: _expected(case, m) for m in METHODS}
    assert got == want, str(report)
    if case.rule is not None:
        found = [(p.rule, p.path) for p in report.problems]
        assert any(r == case.rule and (case.path is None or p == case.path) for r, p in found), found
    for p in report.problems:  # every problem explains itself
        assert p.reason and p.fix and p.rule and p.stage in ("dump", "load")


@pytest.fixture(scope="module", params=METHODS)
def reality(request: pytest.FixtureRequest) -> tuple[str, dict[tuple[str, str], str]]:
    method: str = request.param
    return method, cat.real_verdicts(cat.CASES, method)


@pytest.mark.filterwarnings("ignore::Warning")
def test_catalogue_matches_real_round_trip(reality: tuple[str, dict[tuple[str, str], str]]) -> None:
    method, real = reality
    wrong = []
    for case in cat.CASES:
        for t in cat.TRANSPORTS:
            expected_fail = _expected(case, method)[t] == "fails"
            if expected_fail != (real[(case.name, t)] == "fails"):
                wrong.append(f"{case.name}/{t}: catalogue {_expected(case, method)[t]}, real {real[(case.name, t)]}")
    assert not wrong, "\n".join(wrong)


# -- paths ---------------------------------------------------------------------------
CONN = sqlite3.connect(":memory:", check_same_thread=False)


def _uses_conn() -> Any:
    def query(x: int) -> Any:
        return CONN.execute("select ?", (x,)).fetchone()

    return query


def _problem(report: Report, transport: str) -> Problem:
    return next(p for p in report.problems if p.transport == transport)


def test_paths_read_like_python() -> None:
    report = check(cat.add, cat.WithLock(), transport="cloudpickle")
    assert _problem(report, "cloudpickle").path == "args[0].cfg['handlers'][3]"
    lock = threading.Lock()
    report = check(cat._closure_over(lock), transport="cloudpickle")
    assert _problem(report, "cloudpickle").path == "fn.__closure__['value']"
    report = check(_uses_conn(), 1, transport="cloudpickle")
    p = _problem(report, "cloudpickle")
    assert (p.path, p.rule, p.type_name) == ("fn.__globals__['CONN']", "sqlite", "sqlite3.Connection")
    report = check(cat.add, 1, y={"k": [0, cat.RaisingReduce()]}, transport="pickle")
    assert _problem(report, "pickle").path == "kwargs['y']['k'][1]"


def test_path_in_a_large_list_is_found_by_halving() -> None:
    data: list[Any] = list(range(50_000))
    data[31_337] = threading.Lock()
    p = _problem(check(data, transport="pickle"), "pickle")
    assert (p.path, p.rule) == ("obj[31337]", "thread-sync")


def test_report_table_and_json() -> None:
    report = check(lambda x: x, 1, start_method="spawn")
    text = str(report)
    assert "transport" in text and "spawn" in text and "pickle" in text
    assert "rule:  lambda" in text and "fix:" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["verdicts"]["pickle"] == "fails" and data["verdicts"]["cloudpickle"] == "ok"
    assert data["problems"][0]["path"] == "fn"
    assert report.carriers() == ["dill", "cloudpickle", "auto"]


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="transport"):
        check(len, transport="json")
    with pytest.raises(ValueError, match="start_method"):
        check(len, start_method="thread")


def test_repeated_checks_are_cached_but_see_a_changed_closure() -> None:
    value: Any = 1

    def f() -> Any:
        return value

    first = check(f, transport="cloudpickle")
    assert first.verdicts == check(f, transport="cloudpickle").verdicts == {"cloudpickle": "ok"}
    value = threading.Lock()
    assert check(f, transport="cloudpickle").verdicts == {"cloudpickle": "fails"}


# -- explain ---------------------------------------------------------------------------
def test_explain_a_caught_exception() -> None:
    with pytest.raises(Exception) as info:
        pickle.dumps(lambda: 1)
    assert explain(info.value).problems[0].rule == "lambda"
    with pytest.raises(TypeError) as lock_info:
        pickle.dumps({"a": threading.Lock()})
    assert explain(lock_info.value).problems[0].rule == "thread-sync"
    missing = AttributeError("Can't get attribute 'f' on <module '__main__' (built-in)>")
    assert explain(missing).problems[0].rule == "main-not-importable"
    assert explain(RecursionError("maximum recursion depth exceeded")).problems[0].rule == "recursion"


def test_explain_with_the_object_gives_the_full_check() -> None:
    obj = {"handlers": [1, threading.Lock()]}
    try:
        pickle.dumps(obj)
    except TypeError as exc:
        report = explain(exc, obj)
    assert _problem(report, "pickle").path == "obj['handlers'][1]"
    assert report.verdicts["dill"] == "lossy"


def test_pool_serialization_error_carries_the_diagnosis() -> None:
    from parallelpickle import Pool, SerializationError

    lock = threading.Lock()
    with Pool(1, transport="cloudpickle", start_method="fork") as pool, pytest.raises(SerializationError) as info:
        pool.map(cat._closure_over(lock), [1])
    message = str(info.value)
    assert "fn.__closure__['value']" in message
    assert "thread-sync" in message and "why:" in message and "fix:" in message


def test_pool_result_and_worker_load_failures_are_explained() -> None:
    from parallelpickle import Pool, SerializationError

    with Pool(1, transport="pickle", start_method="fork") as pool, pytest.raises(SerializationError) as info:
        pool.map(cat.make_lock, [1])
    message = str(info.value)
    assert "result" in message and "rule: thread-sync" in message and "fix:" in message
    box = cat._floating_module("ppcat_floating", register=True).Box()
    with Pool(1, transport="pickle", start_method="spawn") as pool, pytest.raises(SerializationError) as info:
        pool.map(cat.add, [box])
    assert "rule: module-not-importable" in str(info.value), str(info.value)


# -- verify=True and __main__ scripts -------------------------------------------------------
def test_verify_loads_in_a_fresh_interpreter() -> None:
    floating = cat._floating_module("ppcat_floating", register=True)
    report = check(floating.double, 1, transport=("pickle", "cloudpickle"), start_method="spawn", verify=True)
    assert report.verified
    assert report.verdicts == {"pickle": "fails", "cloudpickle": "fails"}
    assert report.problems[0].rule == "module-not-importable"
    assert check(cat.add, 1, start_method="spawn", verify=True).ok


def test_verify_catches_what_static_rules_cannot_see() -> None:
    obj = cat.Registered("k", 1)  # rebuilt from a registry that only this process has filled
    assert check(obj, transport="pickle", start_method="spawn").ok
    report = check(obj, transport="pickle", start_method="spawn", verify=True)
    assert report.verdicts == {"pickle": "fails"}
    p = report.problems[0]
    assert (p.stage, p.rule) == ("load", "verified:fresh-load-failed") and "KeyError" in p.error


SCRIPT = textwrap.dedent(
    """
    import enum, functools, json, sys
    sys.path.insert(0, {root!r})
    from parallelpickle import check
    from tests.checker_catalogue import Call, Case, TRANSPORTS, real_verdicts

    OFFSET = 5

    def top(x):
        return x + OFFSET

    class Top:
        class Inner:
            pass

    class Color(enum.Enum):
        RED = 1

    @functools.lru_cache(None)
    def cached(x):
        return x

    def ident(x):
        return x

    def run(objects):
        cases = [Case(n, (lambda c=c: (c.fn, c.args, {{}})), {{}}, {{}}) for n, c in objects.items()]
        real = real_verdicts(cases, "spawn", call=True)
        out = {{}}
        for c in cases:
            fn, args, _ = c.build()
            report = check(fn, *args, start_method="spawn")
            out[c.name] = {{t: [report.matrix[t]["spawn"], real[(c.name, t)]] for t in TRANSPORTS}}
        print(json.dumps(out))

    if __name__ == "__main__":
        class Guarded:
            pass

        def uses_guarded(x):
            return GUARDED_VALUE

        GUARDED_VALUE = 3
        run({{
            "top-fn": Call(top, (1,)),
            "top-class": Call(Top),
            "guarded-class": Call(Guarded),
            "guarded-global": Call(uses_guarded, (1,)),
            "lambda": Call(lambda x: x, (1,)),
            "enum-arg": Call(ident, (Color.RED,)),
            "nested-class-arg": Call(ident, (Top.Inner(),)),
            "partial": Call(functools.partial(top, 1)),
            "lru-cache": Call(cached, (1,)),
        }})
    """
)


def _run_script(tmp_path: Path, as_file: bool) -> dict[str, dict[str, list[str]]]:
    source = SCRIPT.format(root=str(ROOT))
    if as_file:
        script = tmp_path / "user_script.py"
        script.write_text(source)
        argv = [sys.executable, str(script)]
    else:  # as `python -c`: a __main__ with no file, as in a REPL or notebook
        argv = [sys.executable, "-c", source]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, dict[str, list[str]]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("as_file", [True, False], ids=["script-file", "python-c"])
def test_main_objects_under_spawn_match_reality(tmp_path: Path, as_file: bool) -> None:
    result = _run_script(tmp_path, as_file)
    for name, per_transport in result.items():
        for t, (checked, real) in per_transport.items():
            assert (checked == "fails") == (real == "fails"), f"{name}/{t}: checker {checked}, real {real}"
    assert result["top-fn"]["pickle"][0] == ("ok" if as_file else "fails")
    assert result["guarded-class"]["pickle"][0] == "fails"
    assert result["guarded-global"]["dill"][0] == "fails"  # dill binds it to the worker's __main__
    assert result["lambda"]["cloudpickle"][0] == "ok"
    assert result["enum-arg"]["dill"][0] == "fails"  # dill cannot rebuild a __main__ Enum


# -- CLI -----------------------------------------------------------------------------------
def _cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "parallelpickle", "check", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


def test_cli_check_exit_codes_table_and_json(tmp_path: Path) -> None:
    (tmp_path / "jobs.py").write_text("import threading\nLOCK = threading.Lock()\n\ndef work(x):\n    return x\n")
    ok = _cli("jobs.py:work", "--transport", "pickle", "--start-method", "spawn", "--verify", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr + ok.stdout
    assert "verified in a fresh interpreter" in ok.stdout
    assert "transport" in ok.stdout and "pickle" in ok.stdout
    bad = _cli("jobs.py:LOCK", "--json", cwd=tmp_path)
    assert bad.returncode == 1, bad.stderr
    data = json.loads(bad.stdout)
    assert data["verdicts"]["pickle"] == "fails" and data["problems"][0]["rule"] == "thread-sync"
    module = _cli("json:dumps", "--transport", "cloudpickle", "--start-method", "spawn", cwd=tmp_path)
    assert module.returncode == 0, module.stderr
    for usage in (["nocolon"], ["jobs.py:missing"], ["no_such_module_xyz:f"], ["json:dumps", "--transport", "x"]):
        assert _cli(*usage, cwd=tmp_path).returncode == 2, usage
