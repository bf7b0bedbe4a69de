"""schemathesis against the OpenAPI document the daemon serves (GET /v1/admin/openapi.json), with an admin
key: no 5xx, no crash, every response conforms (status code, content type, headers, body schema).

Generated channels carry URLs to arbitrary hosts, and alertd checks URLs only when it delivers. So the
daemon and the fuzzer run inside a private network namespace (loopback only) when `ip netns` works here:
nothing can leave it, and no operation needs excluding. The daemon also has `[net] allow_private = []` and
no routes. Without a namespace (not root), the operations that could make alertd send somewhere (creating or
changing channels, testing one, replays, dead-letter retries) are left out."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import REPO, clean_env, parse_log, to_toml
from tests.reliability.helpers import NetNs, isolated, record

schemathesis = pytest.importorskip("schemathesis")
import requests  # noqa: E402  (comes with schemathesis)
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup  # noqa: E402

pytestmark = pytest.mark.e2e
FUZZ_ADMIN = "alertd_rel_fuzz_admin_Kx7Pq2Wz9Lm4Vb8N"
FUZZ_PRODUCER = "alertd_rel_fuzz_producer_Tc3Hn6Yd1Rs5Qj2M"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
# Without a namespace: anything that could make alertd deliver to a generated URL stays out.
UNSAFE_OUTSIDE_NETNS = re.compile(r"^(POST /v1/admin/channels|PATCH /v1/admin/channels/\{name\}|"
                                  r"POST /v1/admin/channels/\{name\}/test|POST /v1/admin/events/\{id\}/replay|"
                                  r"POST /v1/admin/deliveries/replay|POST /v1/admin/dlq/retry)$")


def fuzz_config(tmp_path: Path) -> Path:
    config = {
        "server": {"listen": "127.0.0.1:0", "drain_timeout": "2s"},
        "storage": {"path": str(tmp_path / "fuzz.db"), "synchronous": "normal"},
        "net": {"allow_private": []},
        "log": {"level": "info"},
        "keys": [{"name": "fuzz-admin", "key": FUZZ_ADMIN, "role": "admin"},
                 {"name": "producer", "key": FUZZ_PRODUCER, "events": ["fuzz.*"]}],
        # one of each config-managed thing, so the API's 409 managed_by_config paths are reached too
        "channels": [{"name": "managed-hook", "type": "webhook", "url": "http://127.0.0.1:9/never"}],
        "checks": [{"name": "fuzz.managed", "period": "1h"}],
    }
    path = tmp_path / "fuzz.toml"
    path.write_text(to_toml(config))
    return path


class Daemon:
    """The daemon as a subprocess, started from the calling thread (and so in its network namespace)."""

    def __init__(self, tmp_path: Path) -> None:
        self.stderr_path = tmp_path / "fuzz.stderr"
        with self.stderr_path.open("wb") as stderr:
            command = [sys.executable, "-m", "alertd", "serve", "--config", str(fuzz_config(tmp_path))]
            self.proc = subprocess.Popen(command, cwd=REPO, env=clean_env(), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 15
        self.port = 0
        try:
            while not self.port:
                assert self.proc.poll() is None, self.stderr
                assert time.monotonic() < deadline, f"no 'listening' line in 15 s:\n{self.stderr}"
                self.port = next((r["port"] for r in parse_log(self.stderr) if r.get("event") == "listening"), 0)
                time.sleep(0.05)
        except BaseException:
            self.proc.kill()
            self.proc.wait(5)
            raise
        self.base = f"http://127.0.0.1:{self.port}"

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("the daemon ignored SIGTERM") from None
        return self.proc.returncode


def operation_runner(strategy: Any, label: str, base: str, headers: dict[str, str], http: requests.Session,
                     failures: dict[str, list[str]], statuses: Counter[str]) -> Any:
    def run(case: Any) -> None:
        try:
            response = case.call(base_url=base, headers=headers, session=http, timeout=10)
        except requests.RequestException as exc:
            failures.setdefault(label, []).append(f"transport: {type(exc).__name__}: {exc}"[:300])
            return
        statuses[f"{response.status_code // 100}xx"] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (FailureGroup, AssertionError) as exc:  # FailureGroup is a BaseExceptionGroup
            found = [f"{type(e).__name__}: {getattr(e, 'title', '')} {str(e)[:300]}"
                     for e in getattr(exc, "exceptions", [exc])]
            failures.setdefault(label, []).append(
                f"{response.status_code} {case.method} {case.formatted_path}: {'; '.join(found)}"[:700])

    return given(case=strategy)(run)


def run_examples(test: Any, examples: int, derandomize: bool) -> None:
    settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
             phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))(test)()


def fuzz(tmp_path: Path, examples: int, in_netns: bool, derandomize: bool) -> dict[str, Any]:
    daemon = Daemon(tmp_path)
    headers = {"x-api-key": FUZZ_ADMIN}
    failures: dict[str, list[str]] = {}
    statuses: Counter[str] = Counter()
    skipped: list[str] = []
    try:
        with requests.Session() as http:
            doc = http.get(daemon.base + "/v1/admin/openapi.json", headers=headers, timeout=10).json()
            schema = schemathesis.openapi.from_dict(doc)
            operations = [result.ok() for result in schema.get_all_operations()]
            for operation in operations:
                label = f"{operation.method.upper()} {operation.path}"
                if not in_netns and UNSAFE_OUTSIDE_NETNS.match(label):
                    skipped.append(label)
                    continue
                strategy = (operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
                            | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

                run_examples(operation_runner(strategy, label, daemon.base, headers, http, failures, statuses),
                             examples, derandomize)
            alive = http.get(daemon.base + "/health", timeout=5).status_code
            key_works = http.get(daemon.base + "/v1/admin/keys", headers=headers, timeout=5).status_code
    finally:
        code = daemon.stop()
    return {"operations": len(operations), "skipped": skipped, "failures": failures, "statuses": dict(statuses),
            "alive": alive, "key_works": key_works, "exit": code, "stderr": daemon.stderr}


def check(out: dict[str, Any], ns: NetNs | None, examples: int, scenario: str) -> None:
    tracebacks = out["stderr"].count("Traceback")
    failures = {label: found[:3] for label, found in out["failures"].items()}
    record(scenario, operations=out["operations"], examples_per_operation=examples,
           responses=out["statuses"], failing_operations=len(failures), netns=ns is not None,
           excluded=out["skipped"], tracebacks_in_log=tracebacks)
    assert not failures, "\n".join(f"{label}:\n  " + "\n  ".join(found) for label, found in failures.items())
    assert tracebacks == 0, [r for r in parse_log(out["stderr"]) if "exception" in r][:3]
    assert out["alive"] == 200 and out["key_works"] == 200 and out["exit"] == 0, {k: out[k] for k in (
        "alive", "key_works", "exit")}


def test_schemathesis_quick(netns, tmp_path):
    # derandomized: the same cases every run, so CI is stable; the slow run explores afresh each time
    examples = int(os.environ.get("FUZZ_EXAMPLES", "25"))
    out = isolated(netns, lambda: fuzz(tmp_path, examples, netns is not None, derandomize=True))
    check(out, netns, examples, "schemathesis (quick)")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_schemathesis_long(netns, tmp_path):
    examples = int(os.environ.get("FUZZ_EXAMPLES_SLOW", "150"))
    out = isolated(netns, lambda: fuzz(tmp_path, examples, netns is not None, derandomize=False))
    check(out, netns, examples, "schemathesis (slow)")
