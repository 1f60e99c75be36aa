"""What the tests stand on: real `wcp serve` processes and SDK clients.

The suite starts three servers from the binary named by WCP_BIN, each on a free
port with its own temp data directory and a policy directory holding the
example policies (`wcp policy examples DIR`):

- community: no credentials; the Basic username is the tenant, so every test
  gets clients of its own tenant and sees only its own workflows;
- tenants: `--tenants FILE` with two tenants, their secrets hashed by
  `wcp tenants hash-secret`;
- expiring: community mode with a 300 ms approval TTL.

Nothing here talks to the server except to wait for `/ready`: the tests use
the `axonflow` package's public API only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from axonflow import AxonFlow, AxonFlowError
from axonflow.adapters import AxonFlowLangGraphAdapter, WorkflowApprovalRequiredError

# How long anything the suite waits for may take before it fails: far above
# what it needs on a loaded 2-core machine, so CI does not flake.
DEADLINE_S = 60.0


def wcp(*args: str, stdin: str | None = None) -> str:
    """Runs the `wcp` binary, returning its stdout; fails on a non-zero exit."""
    result = subprocess.run(
        [os.environ["WCP_BIN"], *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=_server_env(),
        timeout=DEADLINE_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"wcp {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result.stdout


def _server_env() -> dict[str, str]:
    """The environment without WCP_* settings that could change a server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WCP_")}
    env["WCP_LOG"] = "info"
    return env


class Server:
    """A `wcp serve` child process configured by a TOML file of `settings`."""

    def __init__(self, name: str, root: Path, settings: dict[str, str]) -> None:
        self.name = name
        self.url = ""
        self.log: collections.deque[str] = collections.deque(maxlen=200)
        settings = {"listen": "127.0.0.1:0", "data_dir": str(root / name), **settings}
        config = root / f"{name}-serve.toml"
        # A JSON string is a valid TOML string.
        config.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items()))
        self._process = subprocess.Popen(
            [os.environ["WCP_BIN"], "serve", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=_server_env(),
        )
        self._address: list[str] = []
        self._listening = threading.Event()
        threading.Thread(target=self._drain_log, daemon=True).start()

    def _drain_log(self) -> None:
        """Keeps the log (so the child never blocks on a full pipe), noting
        the address of the "listening on" line."""
        assert self._process.stderr is not None
        for line in self._process.stderr:
            self.log.append(line.rstrip())
            match = re.search(r"listening on (http://\S+)", line)
            if match and not self._address:
                self._address.append(match.group(1).rstrip("/"))
                self._listening.set()
        self._listening.set()

    def wait(self) -> Server:
        """Waits until the server listens and is ready; returns it."""
        if not self._listening.wait(DEADLINE_S) or not self._address:
            self.stop()
            raise RuntimeError(f"{self.name} server never listened:\n" + "\n".join(self.log))
        self.url = self._address[0]
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/ready", timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} server never ready:\n" + "\n".join(self.log))
            time.sleep(0.02)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


@dataclass(frozen=True)
class Tenant:
    """One `[[clients]]` table of the tenants server."""

    client_id: str
    secret: str
    tenant: str
    roles: tuple[str, ...]
    max_concurrent_workflows: int | None = None


# The tenants server's clients: two tenants, each with a member and an
# approver, and a member of a third tenant capped at two running workflows.
TENANTS = {
    "acme": Tenant("acme-orchestrator", "acme orchestrator secret", "acme", ("member",)),
    "acme-oncall": Tenant("acme-oncall", "acme on-call secret", "acme", ("approver",)),
    "globex": Tenant("globex-orchestrator", "globex orchestrator secret", "globex", ("member",)),
    "globex-oncall": Tenant("globex-oncall", "globex on-call secret", "globex", ("approver",)),
    "capped": Tenant("initech-batch", "initech batch secret", "initech", ("member",), 2),
}

# Approval links point here (contract §2.4 `approval_url`).
PUBLIC_BASE_URL = "https://wcp.example.test"


def _tenants_file(path: Path) -> None:
    tables = []
    for client in TENANTS.values():
        fields = {
            "client_id": client.client_id,
            "secret_hash": wcp("tenants", "hash-secret", stdin=client.secret).strip(),
            "tenant": client.tenant,
            "org": f"{client.tenant}-org",
            "roles": list(client.roles),
        }
        if client.max_concurrent_workflows is not None:
            fields["max_concurrent_workflows"] = client.max_concurrent_workflows
        # JSON strings, lists of strings and integers are valid TOML values.
        tables.append("[[clients]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in fields.items()))
    path.write_text("\n".join(tables))


class Env:
    """The servers and a factory of clients, handed to every test."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="wcp-sdk-suite-")
        root = Path(self._dir.name)
        policies = root / "policies"
        wcp("policy", "examples", str(policies))
        _tenants_file(root / "tenants.toml")
        common = {"policy_dir": str(policies), "public_base_url": PUBLIC_BASE_URL}
        self.servers = [
            Server("community", root, common),
            Server("tenants", root, {**common, "tenants": str(root / "tenants.toml")}),
            Server("expiring", root, {**common, "approval_ttl": "300ms"}),
        ]
        # Started together, waited for in turn: they load their policies at once.
        try:
            self.community, self.tenants, self.expiring = (server.wait() for server in self.servers)
        except BaseException:
            self.close()
            raise
        self._clients: list[AxonFlow] = []
        self._names = itertools.count(1)

    def tenant_name(self, hint: str) -> str:
        """A community tenant no other test uses."""
        return f"{hint}-{next(self._names)}"

    def client(self, tenant: str | None = None, server: Server | None = None) -> AxonFlow:
        """A client of the community server (or `server`); `tenant` is its
        Basic username."""
        url = (server or self.community).url
        return self._keep(AxonFlow(endpoint=url, client_id=tenant))

    def tenant_client(self, key: str, secret: str | None = None) -> AxonFlow:
        """A client of the tenants server with the credentials of TENANTS[key]."""
        client = TENANTS[key]
        return self._keep(
            AxonFlow(
                endpoint=self.tenants.url,
                client_id=client.client_id,
                client_secret=client.secret if secret is None else secret,
            )
        )

    def _keep(self, client: AxonFlow) -> AxonFlow:
        self._clients.append(client)
        return client

    async def close_clients(self) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            await client.close()

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        self._dir.cleanup()


@contextlib.asynccontextmanager
async def raises_http(status: int, *needles: str, what: str = "the call"):
    """Expects the SDK's plain AxonFlowError for HTTP `status`, its message
    naming each needle."""
    try:
        yield
    except AxonFlowError as error:
        message = str(error)
        assert type(error) is AxonFlowError, f"{what}: {type(error).__name__}: {message}"
        assert message.startswith(f"HTTP {status}: "), f"{what}: expected HTTP {status}, got {message!r}"
        for needle in needles:
            assert needle in message, f"{what}: {needle!r} not in {message!r}"
    else:
        raise AssertionError(f"{what}: expected AxonFlowError with HTTP {status}, nothing was raised")


async def adapter_waiting_for_approval(client: AxonFlow, workflow_name: str = "outreach"):
    """A LangGraph adapter whose first step, a send_email tool call, is held:
    returns the adapter, the step id and its running `wait_for_approval`."""
    adapter = AxonFlowLangGraphAdapter(client, workflow_name)
    await adapter.start_workflow()
    try:
        await adapter.check_tool_gate("send_email", "function", tool_input={"to": "customer"})
    except WorkflowApprovalRequiredError as error:
        assert error.step_id == "step-1-tools-send_email"
        assert error.reason == 'tool "send_email" requires human approval'
        assert error.approval_url == (
            f"{PUBLIC_BASE_URL}/workflows/{adapter.workflow_id}/steps/{error.step_id}/approve"
        )
        step_id = error.step_id
    else:
        raise AssertionError("no WorkflowApprovalRequiredError")
    waiting = asyncio.create_task(adapter.wait_for_approval(step_id, poll_interval=0.05, timeout=30))
    return adapter, step_id, waiting
