from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import asyncpg
import pytest

from shared.postgres import EmbeddedPostgres

pytestmark = pytest.mark.integration


@pytest.fixture
def data_dir() -> Path:
    base = Path(tempfile.mkdtemp(prefix="tollgate-embedded-"))
    base.chmod(0o755)
    return base / "data"


async def _query(url: str, sql: str) -> object:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


def test_embedded_postgres_starts_attaches_and_keeps_data(data_dir: Path) -> None:
    first = EmbeddedPostgres(data_dir, fast_unsafe=True)
    url = first.start()
    try:
        assert first.owns_server
        version = asyncio.run(_query(url, "SHOW server_version_num"))
        assert int(str(version)) >= 150000
        asyncio.run(_query(url, "CREATE TABLE kept AS SELECT 42 AS x"))

        second = EmbeddedPostgres(data_dir)
        assert second.start() == url
        assert not second.owns_server
        second.stop()
        assert asyncio.run(_query(url, "SELECT x FROM kept")) == 42
    finally:
        first.stop()

    pid_file = data_dir / "pgdata" / "postmaster.pid"
    assert not pid_file.exists()
    restarted = EmbeddedPostgres(data_dir, fast_unsafe=True)
    try:
        assert asyncio.run(_query(restarted.start(), "SELECT x FROM kept")) == 42
    finally:
        restarted.stop()


def test_embedded_postgres_stops_when_its_owner_is_killed(data_dir: Path) -> None:
    script = (
        "import sys, time\n"
        "from shared.postgres import EmbeddedPostgres\n"
        f"EmbeddedPostgres({str(data_dir)!r}, fast_unsafe=True).start()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=Path(__file__).parents[2]
    )
    try:
        assert owner.stdout is not None and owner.stdout.readline().strip() == b"ready"
        pid = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    finally:
        owner.kill()
        owner.wait(timeout=10)
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        subprocess.run(["sleep", "0.05"], check=False)
    else:
        pytest.fail("postgres outlived its owner")


def test_cli_commands_print_one_json_object(data_dir: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "TOLLGATE_DATABASE_URL"}
    }
    root = Path(__file__).parents[2]

    def tollgate(*args: str, check: bool = True) -> dict[str, object]:
        result = subprocess.run(
            [sys.executable, "-m", "gateway", *args, "--data-dir", str(data_dir)],
            capture_output=True,
            env=env,
            cwd=root,
            timeout=120,
            check=False,
        )
        if check:
            assert result.returncode == 0, result.stderr.decode()
        lines = result.stdout.decode().strip().splitlines()
        assert len(lines) == 1, lines
        return json.loads(lines[0])

    assert tollgate("admin", "group", "add", "vip", "--ratio", "0.8") == {
        "id": 1,
        "name": "vip",
        "ratio": "0.8",
    }
    tenant = tollgate("admin", "tenant", "add", "acme", "--balance", "12.5", "--group", "vip")
    assert tenant == {"id": 1, "name": "acme", "balance": "12.5", "group": "vip"}
    assert tollgate(
        "admin",
        "price",
        "set",
        "gpt-x",
        "--input",
        "0.15",
        "--output",
        "0.6",
        "--cached-input",
        "0.075",
    ) == {
        "model": "gpt-x",
        "input": "0.15",
        "output": "0.6",
        "cached_input": "0.075",
    }
    channel = tollgate(
        "admin",
        "channel",
        "add",
        "up",
        "--kind",
        "openai",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--api-key",
        "k",
        "--models",
        "gpt-x,gpt-y",
        "--map",
        "gpt-y=real-y",
        "--priority",
        "2",
    )
    assert channel["models"] == ["gpt-x", "gpt-y"] and channel["model_map"] == {"gpt-y": "real-y"}
    key = tollgate("admin", "key", "add", "--tenant", "acme", "--models", "gpt-x")
    assert str(key["key"]).startswith("sk-tg-") and key["models"] == ["gpt-x"]
    assert tollgate("admin", "key", "revoke", str(key["id"])) == {
        "id": key["id"],
        "status": "revoked",
    }
    assert tollgate("admin", "tenant", "credit", "acme", "-2.5", "--note", "refund") == {
        "name": "acme",
        "balance": "10",
    }
    assert tollgate("admin", "balance", "acme") == {
        "tenant": "acme",
        "balance": "10",
        "ledger_sum": "10",
        "holds": "0",
        "available": "10",
    }
    assert tollgate("audit") == {"ok": True, "problems": []}

    refused = tollgate("admin", "tenant", "add", "acme", check=False)
    assert refused == {"error": "tenant `acme` already exists"}
    assert tollgate("admin", "tenant", "credit", "acme", "-100", check=False)["error"].startswith(
        "tenant `acme` cannot cover"
    )  # type: ignore[union-attr]
    assert "is not a decimal" in str(
        tollgate("admin", "price", "set", "m", "--input", "x", "--output", "1", check=False)[
            "error"
        ]
    )


def test_audit_names_the_tenant_whose_books_do_not_add_up(data_dir: Path) -> None:
    server = EmbeddedPostgres(data_dir, fast_unsafe=True)
    url = server.start()
    env = {k: v for k, v in os.environ.items() if k != "TOLLGATE_DATABASE_URL"}
    env["DATABASE_URL"] = url
    root = Path(__file__).parents[2]
    try:
        subprocess.run(
            [sys.executable, "-m", "gateway", "admin", "tenant", "add", "sloppy", "--balance", "5"],
            env=env,
            cwd=root,
            check=True,
            capture_output=True,
            timeout=120,
        )
        asyncio.run(_query(url, "UPDATE tenant SET balance = balance + 1 WHERE name = 'sloppy'"))
        result = subprocess.run(
            [sys.executable, "-m", "gateway", "audit"],
            env=env,
            cwd=root,
            capture_output=True,
            timeout=120,
            check=False,
        )
    finally:
        server.stop()

    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["problems"][0]["tenant"] == "sloppy"
    assert "ledger sum" in report["problems"][0]["problem"]
