"""systemd/alertd.service: what the daemon relies on is declared, and systemd itself accepts the file
(scripts/verify-systemd-unit runs `systemd-analyze verify` and an exposure check)."""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "alertd.service"
SCRIPT = ROOT / "scripts" / "verify-systemd-unit"
needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed (apt-get install systemd)")


def directives(text: str) -> dict[str, list[str]]:
    """section.Key → values in order; systemd allows a key more than once."""
    found: defaultdict[str, list[str]] = defaultdict(list)
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found[f"{section}.{key}"].append(value)
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False)


def test_the_unit_declares_notify_watchdog_and_drain() -> None:
    d = directives(UNIT.read_text())
    expected = {"Type": "notify", "NotifyAccess": "main", "WatchdogSec": "30s", "TimeoutStopSec": "30s",
                "Restart": "on-failure", "User": "alertd", "Group": "alertd", "StateDirectory": "alertd",
                "ExecStart": "/opt/alertd/.venv/bin/alertd serve --config /etc/alertd/alertd.toml",
                "ExecReload": "/bin/kill -HUP $MAINPID", "UMask": "0027", "CapabilityBoundingSet": "",
                "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "SystemCallArchitectures": "native"}
    assert {key: d[f"Service.{key}"][-1] for key in expected} == expected
    assert "ALERTD_STORAGE__PATH=/var/lib/alertd/alertd.db" in d["Service.Environment"]
    assert "@system-service" in d["Service.SystemCallFilter"]
    for key in ("ProtectSystem", "ProtectHome", "NoNewPrivileges", "PrivateTmp", "PrivateDevices", "LockPersonality",
                "RestrictNamespaces", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
                "ProtectControlGroups"):
        assert d[f"Service.{key}"], key
    assert d["Service.ProtectSystem"] == ["strict"]


def test_the_credential_examples_reference_what_they_load() -> None:
    commented = [line.lstrip("#") for line in UNIT.read_text().splitlines() if line.startswith("#")]
    loaded = {line.split("=", 1)[1].split(":", 1)[0] for line in commented if line.startswith("LoadCredential=")}
    referenced = {line.rsplit("cred:", 1)[1] for line in commented
                  if line.startswith("Environment=ALERTD_") and "cred:" in line}
    assert loaded == referenced == {"admin-key", "metrics-token"}


@needs_analyze
def test_systemd_accepts_the_unit() -> None:
    result = run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: systemd-analyze verify alertd.service" in result.stdout


@needs_analyze
def test_the_script_fails_on_a_warning_about_the_unit(tmp_path: Path) -> None:
    broken = tmp_path / "alertd.service"
    broken.write_text(UNIT.read_text().replace("[Install]", "WatchdogSecs=30s\n[Install]"))
    result = run(str(broken))
    assert result.returncode == 1
    assert "Unknown key 'WatchdogSecs'" in result.stdout


@needs_analyze
def test_the_script_fails_when_hardening_is_lost(tmp_path: Path) -> None:
    weak = tmp_path / "alertd.service"
    weak.write_text("\n".join(line for line in UNIT.read_text().splitlines()
                              if not line.startswith(("Protect", "Private", "SystemCall", "Restrict"))))
    result = run(str(weak))
    assert result.returncode == 1, result.stdout
    assert "exposure" in result.stderr


def test_the_script_reports_a_missing_file(tmp_path: Path) -> None:
    result = run(str(tmp_path / "nope.service"))
    assert result.returncode == 2
