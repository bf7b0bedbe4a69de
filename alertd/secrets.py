"""Secret values in config: written inline, or as `env:NAME`, `file:PATH` or `cred:NAME` (a systemd
credential, read from $CREDENTIALS_DIRECTORY) so the TOML itself need not hold them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, SecretStr

MAX_SECRET_FILE_BYTES = 64 * 1024
SECRET_REFS = ("env:", "file:", "cred:")  # what resolve_secret_ref reads from the daemon's environment and files


def secret_ref_in(value: Any, where: str = "") -> str | None:
    """The path of the first string in `value` (nested dicts and lists) that is a secret reference, or None."""
    if isinstance(value, str):
        return where or "value" if value.startswith(SECRET_REFS) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = secret_ref_in(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def resolve_secret_ref(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ValueError(f"environment variable {name[:80]} is not set")
        return os.environ[name]
    if value.startswith("file:"):
        return _read_secret_file(Path(value[5:]))
    if value.startswith("cred:"):
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ValueError("cred: needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=)")
        name = value[5:]
        if not name or "/" in name:
            raise ValueError("cred: takes a credential name, not a path")
        return _read_secret_file(Path(directory) / name)
    return value


def _read_secret_file(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read secret file {str(path)[:120]}: {exc.strerror}") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise ValueError(f"secret file {str(path)[:120]} is larger than 64 KiB")
    try:
        return data.decode().rstrip("\r\n")
    except UnicodeDecodeError:
        raise ValueError(f"secret file {str(path)[:120]} is not UTF-8") from None


Secret = Annotated[SecretStr, BeforeValidator(resolve_secret_ref)]


# Vendor prefixes say what kind of secret it is and nothing about its value, so they may be shown.
KNOWN_PREFIXES = ("whsec_", "alertd_", "xoxb-", "xoxp-", "SG.", "re_", "sk_", "AC")


def mask(value: str | None) -> str | None:
    """How a secret is shown: which kind it is, never any of its own characters."""
    if not value:
        return value
    prefix = next((p for p in KNOWN_PREFIXES if value.startswith(p) and len(value) > len(p) + 8), "")
    return prefix + "****"
