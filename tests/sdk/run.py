"""Runs the SDK suite: the AxonFlow Python SDK, unmodified, against wcp.

    WCP_BIN=target/debug/wcp python tests/sdk/run.py [NAME_SUBSTRING ...]

Every `async def test_*(env)` of the test_*.py modules here runs in order, in its
own event loop, with `env` (harness.Env) holding the servers and a client
factory. The last line is `N passed, N failed`; the exit code is 1 when a
test failed or the servers did not start.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import sys
import time
import traceback
from pathlib import Path

# Before the SDK is imported: tests never leave the machine.
os.environ["AXONFLOW_TELEMETRY"] = "off"

HERE = Path(__file__).resolve().parent
MODULES = sorted(path.stem for path in HERE.glob("test_*.py"))


def collect(patterns: list[str]):
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name, function in inspect.getmembers(module, inspect.iscoroutinefunction):
            if not name.startswith("test_") or function.__module__ != module_name:
                continue
            qualified = f"{module_name}::{name}"
            if not patterns or any(pattern in qualified for pattern in patterns):
                line = function.__code__.co_firstlineno
                yield module_name, line, qualified, function


def print_test_locals(error: BaseException) -> None:
    """Prints the variables of the failing line's frame in a test module:
    a bare `assert` says nothing about the values it compared."""
    frames = [frame for frame, _ in traceback.walk_tb(error.__traceback__)]
    ours = [frame for frame in frames if Path(frame.f_code.co_filename).stem in MODULES]
    if not ours:
        return
    frame = ours[-1]
    print(f"  locals of {frame.f_code.co_name}:")
    for name, value in frame.f_locals.items():
        if name != "env" and not name.startswith("__"):
            text = repr(value)
            print(f"    {name} = {text[:500]}{'...' if len(text) > 500 else ''}")


async def run_one(env, function) -> None:
    try:
        await function(env)
    finally:
        await env.close_clients()


def main() -> int:
    if "WCP_BIN" not in os.environ:
        print("WCP_BIN must name the wcp binary to test", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))
    from harness import Env

    tests = sorted(collect(sys.argv[1:]), key=lambda test: (MODULES.index(test[0]), test[1]))
    started = time.monotonic()
    try:
        env = Env()
    except Exception:
        traceback.print_exc()
        print(f"0 passed, {len(tests)} failed")
        return 1
    print(
        f"servers up in {time.monotonic() - started:.1f}s: "
        + ", ".join(f"{server.name} {server.url}" for server in env.servers),
        flush=True,
    )
    passed, failed = 0, []
    try:
        for _, _, name, function in tests:
            began = time.monotonic()
            try:
                asyncio.run(run_one(env, function))
            except Exception as error:
                failed.append(name)
                print(f"FAIL {name} ({time.monotonic() - began:.2f}s)", flush=True)
                traceback.print_exc()
                print_test_locals(error)
            else:
                passed += 1
                print(f"ok   {name} ({time.monotonic() - began:.2f}s)", flush=True)
    finally:
        if failed:
            for server in env.servers:
                print(f"--- last lines of the {server.name} server's log", flush=True)
                print("\n".join(list(server.log)[-40:]), flush=True)
        env.close()
    for name in failed:
        print(f"failed: {name}")
    print(f"SDK suite took {time.monotonic() - started:.1f}s")
    print(f"{passed} passed, {len(failed)} failed", flush=True)
    return 1 if failed or not tests else 0


if __name__ == "__main__":
    sys.exit(main())
