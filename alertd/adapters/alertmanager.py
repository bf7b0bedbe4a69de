"""Prometheus Alertmanager's webhook payload (version "4") → one envelope per alert.

The documented shape (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config):
`{version, groupKey, truncatedAlerts, status, receiver, groupLabels, commonLabels, commonAnnotations,
externalURL, alerts: [{status, labels, annotations, startsAt, endsAt, generatorURL, fingerprint}]}`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from alertd.adapters import UNNAMED, name_segment
from alertd.ingest import IngestError, invalid, parse_envelope
from alertd.model import Envelope, Severity

PREFIX = "alertmanager."
VERSION = "4"

# Values Prometheus rule authors commonly put in a `severity` label, beyond alertd's own names.
SEVERITY_ALIASES = {
    "page": Severity.CRITICAL,
    "high": Severity.ERROR,
    "medium": Severity.WARNING,
    "warn": Severity.WARNING,
    "low": Severity.INFO,
    "none": Severity.INFO,
}


def event_name(alertname: str | None) -> str:
    """`alertmanager.<alertname>` as one segment: `HighCPU` → `highcpu`, `disk.full` → `disk_full`."""
    return PREFIX + ((name_segment(alertname) if alertname else "") or UNNAMED)


def severity_of(label: Any, status: str) -> Severity:
    """A resolved alert is info (good news); otherwise the `severity` label, unknown → warning."""
    if status == "resolved":
        return Severity.INFO
    if not isinstance(label, str):
        return Severity.WARNING
    value = label.strip().lower()
    if value in SEVERITY_ALIASES:
        return SEVERITY_ALIASES[value]
    try:
        return Severity.parse(value)
    except ValueError:
        return Severity.WARNING


def idempotency_key(fingerprint: str, starts_at: str, status: str) -> str:
    """Same alert, same start, same status → same key: a re-sent group does not notify again, its
    resolution does. Separators keep ("ab", "c") and ("a", "bc") apart."""
    digest = hashlib.sha256(f"{fingerprint}\n{starts_at}\n{status}".encode()).hexdigest()
    return "am:" + digest[:40]


def to_envelopes(data: Any, max_batch: int) -> list[Envelope]:
    """Raises IngestError (400 for a malformed payload, 413 for more than `max_batch` alerts)."""
    if not isinstance(data, dict):
        raise invalid("an Alertmanager webhook body must be a JSON object", "body")
    version = data.get("version")
    if version != VERSION:
        shown = str(version)[:20] if version is not None else "missing"
        raise invalid(f"version must be \"4\" (Alertmanager webhook payload version 4), got {shown}; "
                      "for other producers declare a [[hooks]] mapping", "version")
    alerts = data.get("alerts")
    if not isinstance(alerts, list):
        raise invalid("alerts must be a list of alerts", "alerts")
    if not alerts:
        raise invalid("alerts is empty: there is nothing to accept", "alerts")
    if len(alerts) > max_batch:
        raise IngestError(413, "too_large", f"a webhook carries at most {max_batch} alerts "
                          "(set max_alerts in Alertmanager's webhook_config)", "alerts")
    group = _group_fields(data)
    return [_one(alert, group, f"alerts[{i}]") for i, alert in enumerate(alerts)]


def _group_fields(data: dict[str, Any]) -> dict[str, Any]:
    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) else None

    status = text("status")
    return {"receiver": text("receiver"), "external_url": text("externalURL"), "group_key": text("groupKey"),
            "status": status if status in ("firing", "resolved") else "firing"}


def _one(alert: Any, group: dict[str, Any], where: str) -> Envelope:
    if not isinstance(alert, dict):
        raise invalid("each alert must be a JSON object", where)
    labels = _string_map(alert.get("labels"), f"{where}.labels", required=True)
    annotations = _string_map(alert.get("annotations"), f"{where}.annotations", required=False)
    raw_status = alert.get("status")
    status = raw_status if raw_status in ("firing", "resolved") else group["status"]
    starts_at = _text(alert, "startsAt", where)
    fingerprint = _text(alert, "fingerprint", where) or _labels_fingerprint(labels)
    payload: dict[str, Any] = {}
    summary = annotations.get("summary") or annotations.get("description")
    if summary:
        payload["summary"] = summary
    payload.update({
        "status": status, "labels": labels, "annotations": annotations, "starts_at": starts_at,
        "ends_at": _text(alert, "endsAt", where), "generator_url": _text(alert, "generatorURL", where),
        "fingerprint": fingerprint, "receiver": group["receiver"], "external_url": group["external_url"],
        "group_key": group["group_key"],
    })
    raw = {"event": event_name(labels.get("alertname")), "payload": payload,
           "severity": severity_of(labels.get("severity"), status).label,
           "idempotency_key": idempotency_key(fingerprint, starts_at or "", status)}
    return parse_envelope(raw, where + ".")


def _string_map(value: Any, field: str, *, required: bool) -> dict[str, str]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise invalid("must be an object of string values", field)
    for key, item in value.items():
        if not isinstance(item, str):
            raise invalid(f"values must be strings ({str(key)[:40]!r} is not)", f"{field}.{str(key)[:40]}")
    return value


def _text(alert: dict[str, Any], key: str, where: str) -> str | None:
    value = alert.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{key} must be a string", f"{where}.{key}")
    return value


def _labels_fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager before 0.19 sent no fingerprint: the sorted label set identifies the alert instead."""
    return hashlib.sha256(orjson.dumps(labels, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
