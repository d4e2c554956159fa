"""The `swarm` command as a person types it: exit status, output, errors."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from swarm.cli import main
from swarm.topic import parse_address, parse_topic


def test_bee_put_get_ls_del_round_trip(tmp_path: Path) -> None:
    runner = CliRunner()
    d = str(tmp_path / "db")
    for k, v in [("b", "2"), ("a", "1"), ("c", "3")]:
        assert runner.invoke(main, ["bee", "put", d, k, v]).exit_code == 0
    got = runner.invoke(main, ["bee", "get", d, "b"])
    assert got.exit_code == 0 and got.output.strip() == "2"
    ls = runner.invoke(main, ["bee", "ls", d, "--json"])
    assert [e["key"] for e in json.loads(ls.output)["entries"]] == ["a", "b", "c"]
    assert runner.invoke(main, ["bee", "del", d, "b"]).exit_code == 0
    missing = runner.invoke(main, ["bee", "get", d, "b"])
    assert missing.exit_code == 1 and "no such key" in missing.output


def test_bad_usage_exits_2_and_errors_exit_1(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["bee", "put", str(tmp_path)]).exit_code == 2
    assert runner.invoke(main, ["no-such-command"]).exit_code == 2
    bad = runner.invoke(main, ["lookup", "chat", "--bootstrap", "nonsense"])
    assert bad.exit_code == 1 and "HOST:PORT" in bad.output


def test_topics_and_addresses_parse_as_documented() -> None:
    hex_topic = "ab" * 32
    assert parse_topic(hex_topic) == bytes.fromhex(hex_topic)
    assert len(parse_topic("chat")) == 32 and parse_topic("chat") != parse_topic("chat2")
    assert parse_address("127.0.0.1:49737") == ("127.0.0.1", 49737)
    assert parse_address("[::1]:5") == ("::1", 5)
