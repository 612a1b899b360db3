"""A user's own script: lambdas, closures and ``__main__`` functions and classes.

pytest's ``__main__`` is not a user's script, so each case runs a real script in
a fresh interpreter, for every transport x start method (the ``combo`` fixture).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from parallelpickle import Pool, SerializationError

    OFFSET = 5

    def main_fn(x):
        return x + OFFSET

    class Point:
        def __init__(self, x):
            self.x = x

    def norm(p):
        return abs(p.x)

    def run(transport, start_method):
        factor = 3
        out = {}
        with Pool(2, transport=transport, start_method=start_method) as pool:
            cases = {
                "lambda": lambda: pool.map(lambda x: x * 2, range(4)),
                "closure": lambda: pool.map(lambda x: x * factor, range(4)),
                "main_fn": lambda: pool.map(main_fn, range(4)),
                "main_class": lambda: pool.map(norm, [Point(-1), Point(2)]),
                "submit": lambda: [pool.submit(main_fn, 1).result(timeout=60)],
            }
            for name, case in cases.items():
                try:
                    out[name] = case()
                except SerializationError as exc:
                    out[name] = "SerializationError: " + str(exc)
        return out

    if __name__ == "__main__":
        print(json.dumps(run(sys.argv[1], sys.argv[2])))
    """
)

EXPECTED = {
    "lambda": [0, 2, 4, 6],
    "closure": [0, 3, 6, 9],
    "main_fn": [5, 6, 7, 8],
    "main_class": [1, 2],
    "submit": [6],
}


def _run(tmp_path: Path, transport: str, start_method: str) -> dict[str, object]:
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), transport, start_method],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_user_script(tmp_path: Path, combo: tuple[str, str]) -> None:
    transport, start_method = combo
    out = _run(tmp_path, transport, start_method)
    if transport == "pickle":
        # By reference: importable __main__ functions and classes work, lambdas are refused.
        for name in ("lambda", "closure"):
            assert isinstance(out[name], str) and out[name].startswith("SerializationError")
            assert "lambda" in out[name] and "cloudpickle" in out[name]
        for name in ("main_fn", "main_class", "submit"):
            assert out[name] == EXPECTED[name], (name, out[name])
        return
    assert out == EXPECTED
