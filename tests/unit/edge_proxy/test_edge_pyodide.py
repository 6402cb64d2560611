"""Smoke test: relay_core.py imports and decides the same way under Pyodide on node."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CORE = ROOT / "edge_proxy" / "relay_core.py"
PYODIDE = ROOT / "node_modules" / "pyodide"
SCRIPT = Path(__file__).with_name("pyodide_smoke.mjs")


def run_probe() -> dict[str, object]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the Pyodide smoke test needs it")
    if not (PYODIDE / "pyodide.mjs").is_file():
        pytest.skip("node_modules/pyodide is missing; run `npm ci` at the repository root")
    done = subprocess.run(
        [node, str(SCRIPT), str(CORE), str(PYODIDE)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def relay_error(status: int, code: str, message: str) -> dict[str, object]:
    return {
        "status": status,
        "body": {"error": {"type": "relay_error", "code": code, "message": message}},
    }


def test_relay_core_decides_under_pyodide() -> None:
    result = run_probe()

    assert result["python"] >= [3, 12]  # type: ignore[operator]
    assert result["forward"] == {
        "url": "https://generativelanguage.googleapis.com/v1beta/models/m:streamGenerateContent?alt=sse",
        "headers": [["x-goog-api-key", "AIza-upstream"], ["content-type", "application/json"]],
    }
    assert result["missing_key"] == relay_error(
        401, "relay_key_missing", "the `x-relay-key` header is missing"
    )
    assert result["wrong_key"] == relay_error(
        401, "relay_key_invalid", "the `x-relay-key` header is wrong"
    )
    assert result["unset_secret"] == relay_error(
        500, "secret_not_configured", "relay secret not configured"
    )
    assert result["traversal"] == relay_error(
        400, "invalid_path", "`.` and `..` segments are not allowed in the path"
    )
    assert result["unknown"] == relay_error(
        404,
        "unknown_upstream",
        "no upstream is named `nowhere`; known: anthropic, cfai, gemini, openai",
    )
    assert result["binding"] == {"model": "@cf/meta/llama-3.1-8b-instruct"}
    assert result["response_headers"] == [["content-type", "text/event-stream"]]
