"""The ``swarm`` command: run nodes, join topics, inspect local databases, demo.

Exit status: 0 on success, 1 on a user-facing error (message on stderr, no
traceback), 2 on bad usage (click's own). ``--json`` prints machine-readable
output on every command.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dht import event_loop
from storage.errors import PeerswarmError
from swarm.topic import parse_address, parse_topic

if TYPE_CHECKING:
    from storage import Bee

T = TypeVar("T")


def _run(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T | None]:
    """Run an async command body; turn project errors into exit status 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T | None:
        try:
            return event_loop.run(fn(*args, **kwargs))
        except PeerswarmError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            return None

    return wrapper


def _emit(as_json: bool, data: Any, text: str) -> None:
    click.echo(jsonlib.dumps(data, indent=2) if as_json else text)


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
bootstrap_option = click.option(
    "--bootstrap",
    "bootstrap",
    multiple=True,
    metavar="HOST:PORT",
    help="A known DHT node (repeatable). One is enough to enter the network.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="peerswarm")
def main() -> None:
    """peerswarm: find peers by topic, connect, replicate signed logs and databases."""


@main.command()
@json_option
def demo(as_json: bool) -> None:
    """Everything on an embedded local network: no configuration needed."""
    from swarm.demo import run_demo

    _run(run_demo)(as_json)


@main.command()
@click.option("--size", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--host", default="127.0.0.1", show_default=True)
@json_option
def testnet(size: int, host: str, as_json: bool) -> None:
    """A local DHT on 127.0.0.1; prints its bootstrap list and runs until Ctrl-C."""

    async def body() -> None:
        from dht.testnet import testnet as make_testnet

        async with make_testnet(size=size, host=host) as net:
            boot = [f"{h}:{p}" for h, p in net.bootstrap]
            _emit(as_json, {"bootstrap": boot, "size": size}, "bootstrap: " + " ".join(boot))
            sys.stdout.flush()
            await asyncio.Event().wait()

    _run(body)()


@main.command("dht-node")
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=49737, show_default=True, type=click.IntRange(0, 65535))
@bootstrap_option
@click.option("--persistent", is_flag=True, help="Join routing tables from the start.")
@json_option
def dht_node(
    host: str, port: int, bootstrap: tuple[str, ...], persistent: bool, as_json: bool
) -> None:
    """Run a DHT node. Without --bootstrap it starts a new network (and is persistent)."""

    async def body() -> None:
        from dht import DHTNode

        boot = [parse_address(b) for b in bootstrap]
        ephemeral = False if (persistent or not boot) else None
        async with DHTNode(bootstrap=boot, host=host, port=port, ephemeral=ephemeral) as node:
            h, p = node.address
            _emit(
                as_json,
                {"address": f"{h}:{p}", "bootstrap": [f"{a}:{b}" for a, b in boot]},
                f"dht node listening on {h}:{p}"
                + ("" if boot else " (new network: pass --bootstrap to others)"),
            )
            sys.stdout.flush()
            await asyncio.Event().wait()

    _run(body)()


@main.command()
@click.argument("topic")
@bootstrap_option
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for peers.")
@json_option
def lookup(topic: str, bootstrap: tuple[str, ...], timeout: float, as_json: bool) -> None:
    """List the peers of a TOPIC (64 hex digits, or any string, which is hashed)."""

    async def body() -> None:
        from dht import DHTNode

        key = parse_topic(topic)
        boot = [parse_address(b) for b in bootstrap]
        if not boot:
            raise click.UsageError("--bootstrap is required (or run `swarm testnet`)")
        peers: list[dict[str, Any]] = []
        async with DHTNode(bootstrap=boot, host="0.0.0.0", port=0) as node:
            try:
                async with asyncio.timeout(timeout):
                    async for record in node.lookup(key):
                        peers.append(
                            {
                                "public_key": record.public_key.hex(),
                                "relay_addresses": [
                                    f"{h}:{p}" for h, p in record.relay_addresses
                                ],
                            }
                        )
                        if not as_json:
                            click.echo(record.public_key.hex())
            except TimeoutError:
                pass
        if as_json:
            click.echo(jsonlib.dumps({"topic": key.hex(), "peers": peers}, indent=2))
        elif not peers:
            click.echo("no peers found", err=True)

    _run(body)()


@main.group()
def bee() -> None:
    """A local Bee (B-tree key-value database) in DIR."""


@asynccontextmanager
async def _open_bee(directory: str, name: str) -> AsyncIterator[Bee]:
    """The Bee named ``name`` in the store at ``directory``, keys and values as text."""
    from storage import Bee, Store

    async with Store(directory) as store:
        db = Bee(store.core(name=name), key_encoding="utf-8", value_encoding="utf-8")
        await db.ready()
        yield db


def _bee_command(
    name: str, help_text: str, *, must_exist: bool = True
) -> Callable[[Callable[..., Any]], Any]:
    """A ``bee`` subcommand: DIRECTORY first, then its own arguments; --name and --json."""

    def decorate(f: Callable[..., Any]) -> Any:
        f = json_option(f)
        name_help = "Core name in the store."
        f = click.option("--name", default="db", show_default=True, help=name_help)(f)
        f = click.argument("directory", type=click.Path(file_okay=False, exists=must_exist))(f)
        return bee.command(name, help=help_text)(f)

    return decorate


@_bee_command("put", "Set KEY to VALUE.", must_exist=False)
@click.argument("key")
@click.argument("value")
def bee_put(directory: str, key: str, value: str, name: str, as_json: bool) -> None:
    async def body() -> None:
        async with _open_bee(directory, name) as db:
            await db.put(key, value)
            _emit(as_json, {"key": key, "value": value, "version": db.version}, "ok")

    _run(body)()


@_bee_command("get", "Print the value of KEY.")
@click.argument("key")
def bee_get(directory: str, key: str, name: str, as_json: bool) -> None:
    async def body() -> None:
        async with _open_bee(directory, name) as db:
            entry = await db.get(key)
            if entry is None:
                raise _UserError(f"no such key: {key}")
            _emit(as_json, {"key": key, "value": entry.value, "seq": entry.seq}, entry.value)

    _run(body)()


@_bee_command("del", "Delete KEY.")
@click.argument("key")
def bee_del(directory: str, key: str, name: str, as_json: bool) -> None:
    async def body() -> None:
        async with _open_bee(directory, name) as db:
            await db.delete(key)
            _emit(as_json, {"deleted": key, "version": db.version}, "ok")

    _run(body)()


@_bee_command("ls", "List keys and values (optionally from --gte / before --lt).")
@click.option("--gte", default=None)
@click.option("--lt", default=None)
@click.option("--limit", default=None, type=click.IntRange(min=0))
def bee_ls(
    directory: str,
    name: str,
    gte: str | None,
    lt: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    async def body() -> None:
        async with _open_bee(directory, name) as db:
            rows = [
                {"key": e.key, "value": e.value, "seq": e.seq}
                async for e in db.range(gte=gte, lt=lt, limit=limit)
            ]
            text = "\n".join(f"{r['key']}\t{r['value']}" for r in rows)
            _emit(as_json, {"entries": rows, "version": db.version}, text)

    _run(body)()


class _UserError(PeerswarmError):
    """A command could not do what was asked (exit status 1)."""


if __name__ == "__main__":  # pragma: no cover
    main()
