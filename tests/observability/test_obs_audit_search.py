"""`bastion audit search` over the audit file (with rotation) and over PostgreSQL, and the
batched database sink (redacted rows)."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from bastion.observability.audit import Redactor
from bastion.observability.audit_db import AuditDbSink, search_db
from bastion.observability.audit_search import Query, parse_time, search_file
from bastion.observability.cli import audit
from tests.observability.streams import request


def write(path: Path, events: list[dict[str, object]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))


def stamped(minute: int, **kw: object) -> dict[str, object]:
    return {**request(**kw), "time": f"2026-11-28T04:{minute:02d}:00.000Z"}  # type: ignore[arg-type]


@pytest.fixture
def audit_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    write(path.with_name("audit.jsonl.2"), [stamped(0, principal="u-eve", status=404)])
    write(path.with_name("audit.jsonl.1"), [stamped(10, principal="u-bob")])
    write(path, [stamped(20, principal="u-eve", status=403), stamped(30, principal="u-eve")])
    with path.open("ab") as fh:
        fh.write(b'{"torn": ')  # a line being written right now
    return path


def run(*args: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(audit, ["search", *args])
    assert result.exit_code == 0, result.output
    return [orjson.loads(line) for line in result.output.splitlines()]


def test_file_search_by_principal_status_class_and_time(audit_file: Path) -> None:
    found = run("--file", str(audit_file), "--principal", "u-eve", "--status", "4xx")
    assert [e["time"][11:16] for e in found] == ["04:00", "04:20"]  # oldest rotated file first
    found = run("--file", str(audit_file), "--since", "2026-11-28T04:05:00Z",
                "--until", "2026-11-28T04:25:00Z")  # fmt: skip
    assert [e["principal"] for e in found] == ["u-bob", "u-eve"]
    assert len(run("--file", str(audit_file), "--route", "/orders/*")) == 4
    assert run("--file", str(audit_file), "--route", "/users/{id}") == []
    assert len(run("--file", str(audit_file), "--status", "404", "--limit", "5")) == 1


def test_cli_rejects_bad_arguments(audit_file: Path) -> None:
    assert CliRunner().invoke(audit, ["search"]).exit_code != 0
    bad_status = CliRunner().invoke(audit, ["search", "--file", str(audit_file), "--status", "4x"])
    assert bad_status.exit_code != 0
    bad_time = CliRunner().invoke(audit, ["search", "--file", str(audit_file), "--since", "soon"])
    assert bad_time.exit_code != 0


def test_relative_times() -> None:
    assert parse_time("15m", now=10_000.0) == 10_000.0 - 900
    assert parse_time("1700000000") == 1_700_000_000.0
    assert parse_time("2026-11-28T04:00:00Z") == parse_time("2026-11-28T04:00:00+00:00")
    assert list(search_file(Path("/nonexistent/audit.jsonl"), Query())) == []


@pytest.mark.services
async def test_postgres_sink_batches_redacts_and_is_searchable(postgres_url: str) -> None:
    table = f"audit_{secrets.token_hex(4)}"
    clock_value = [1_800_000_000.0]
    sink = AuditDbSink(
        postgres_url,
        table=table,
        batch_size=50,
        redactor=Redactor(["password"]),
        clock=lambda: clock_value[0],
    )
    await sink.start()
    try:
        for n in range(120):
            clock_value[0] += 1
            sink.add(request(principal=f"u-{n % 3}", status=404 if n % 4 == 0 else 200,
                             query={"password": "hunter2", "page": "1"}))  # fmt: skip
        await sink.flush()
        assert len(await search_db(postgres_url, Query(limit=1000), table)) == 120
        eve = await search_db(postgres_url, Query(principal="u-1", status="4xx"), table)
        assert len(eve) == len([n for n in range(120) if n % 3 == 1 and n % 4 == 0])
        assert all(e["query"]["password"] == "[REDACTED]" for e in eve)
        window = Query(since=1_800_000_010.0, until=1_800_000_019.0, limit=100)
        assert len(await search_db(postgres_url, window, table)) == 10
        result = await asyncio.to_thread(  # the CLI runs its own event loop
            CliRunner().invoke,
            audit, ["search", "--db", postgres_url, "--table", table, "--principal", "u-2",
                    "--limit", "3"]
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert len(result.output.splitlines()) == 3
    finally:
        from sqlalchemy import text

        async with sink._engine.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        await sink.close()
