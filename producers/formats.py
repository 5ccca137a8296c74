"""One parser for everything that enters harewatch, shared by producers and workers.

Bodies: a JSON object or array of readings (DESIGN §2), Telegraf's JSON
serializer output, collectd's JSON, InfluxDB line protocol and Graphite
plaintext (what Telegraf's and collectd's AMQP outputs publish), chosen by
content type or sniffed.  Files: CSV (``metric,value,ts`` plus label
columns) and JSON lines.  Every error says which line and which field.

>>> [r.metric for r in parse_body(b"cpu,host=a usage_idle=98.5,usage_user=1.5 1700000000000000000")]
['cpu_usage_idle', 'cpu_usage_user']
"""
from __future__ import annotations

import csv
import json
import math
import re
import time
from typing import Any, Iterable, Iterator, Mapping

import orjson

from harewatch.errors import InvalidInput
from harewatch.messages import Reading, check_labels, check_metric, check_value, parse_json_reading
from harewatch.times import check_ts_bounds, parse_ts

MAX_BODY_BYTES = 1 << 20          # 1 MiB per message
MAX_READINGS_PER_BODY = 20_000


def _telegraf_json(obj: dict[str, Any], line: int | None, default_ts: float | None) -> list[Reading]:
    """Telegraf's JSON serializer: {"name", "tags", "fields", "timestamp"}."""
    name = obj.get("name")
    fields = obj.get("fields")
    if not isinstance(name, str) or not isinstance(fields, dict):
        raise InvalidInput("Telegraf JSON needs 'name' and 'fields'", "missing_field", line)
    ts = parse_ts(obj["timestamp"], "timestamp", line) if "timestamp" in obj else default_ts
    if ts is None:
        raise InvalidInput("missing", "missing_field", line, "timestamp")
    labels = check_labels(obj.get("tags") or {}, line)
    out = [Reading(check_metric(_join(name, f), line), float(v), ts, labels)
           for f, v in fields.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if not out:
        raise InvalidInput("no numeric field", "bad_type", line, "fields")
    return out


def _collectd_json(obj: dict[str, Any], line: int | None) -> list[Reading]:
    """collectd's JSON format: {"values", "dsnames", "time", "host", "plugin", "type", ...}."""
    values, names = obj.get("values"), obj.get("dsnames") or []
    if not isinstance(values, list):
        raise InvalidInput("collectd JSON needs 'values'", "missing_field", line, "values")
    ts = parse_ts(obj.get("time"), "time", line)
    base = "_".join(x for x in (obj.get("plugin"), obj.get("type"), obj.get("type_instance")) if x)
    labels = {"host": str(obj.get("host", ""))}
    if obj.get("plugin_instance"):
        labels["plugin_instance"] = str(obj["plugin_instance"])
    out = []
    for i, v in enumerate(values):
        ds = names[i] if i < len(names) else str(i)
        metric = base if ds == "value" else f"{base}_{ds}"
        out.append(Reading(check_metric(_sanitize(metric), line), check_value(v, line, f"values[{i}]"), ts, labels))
    return out


def _sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_:\-]", "_", name)


def _join(measurement: str, field: str) -> str:
    return _sanitize(measurement if field == "value" else f"{measurement}_{field}")


def _json_item(obj: Any, line: int | None, default_ts: float | None) -> list[Reading]:
    if isinstance(obj, dict) and "fields" in obj and "name" in obj:
        return _telegraf_json(obj, line, default_ts)
    if isinstance(obj, dict) and "dsnames" in obj and "values" in obj:
        return _collectd_json(obj, line)
    return [parse_json_reading(obj, line, default_ts)]


# -- Influx line protocol ---------------------------------------------------
def _split_unescaped(s: str, sep: str) -> list[str]:
    out, cur, i, quoted = [], [], 0, False
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur.append(s[i:i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        if c == sep and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append("".join(cur))
    return out


def _unescape(s: str) -> str:
    return re.sub(r"\\([ ,=\"\\])", r"\1", s)


def parse_influx_line(text: str, line: int | None = None, default_ts: float | None = None) -> list[Reading]:
    """One line of InfluxDB line protocol; each numeric field becomes a reading ``<measurement>_<field>``."""
    parts = _split_unescaped(text.strip(), " ")
    parts = [p for p in parts if p != ""]
    if len(parts) not in (2, 3):
        raise InvalidInput("expected 'measurement[,tags] fields [timestamp]'", "parse", line)
    head = _split_unescaped(parts[0], ",")
    measurement = _unescape(head[0])
    labels: dict[str, str] = {}
    for tag in head[1:]:
        kv = _split_unescaped(tag, "=")
        if len(kv) != 2:
            raise InvalidInput(f"bad tag {tag!r}", "parse", line, "tags")
        k = _sanitize(_unescape(kv[0]))
        labels[k] = _unescape(kv[1])
    check_labels(labels, line)
    ts = default_ts
    if len(parts) == 3:
        try:
            ts = int(parts[2]) / 1e9   # line protocol is nanoseconds by default
        except ValueError:
            raise InvalidInput(f"bad timestamp {parts[2]!r} (integer nanoseconds)", "bad_ts", line, "timestamp") from None
    if ts is None:
        raise InvalidInput("missing (and no message timestamp)", "missing_field", line, "timestamp")
    out = []
    for fv in _split_unescaped(parts[1], ","):
        kv = fv.split("=", 1)
        if len(kv) != 2:
            raise InvalidInput(f"bad field {fv!r}", "parse", line, "fields")
        key, raw = _unescape(kv[0]), kv[1]
        if raw.startswith('"') or raw in ("t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"):
            continue  # strings and booleans are not metrics
        num = raw[:-1] if raw[-1:] in ("i", "u") else raw
        try:
            v = float(num)
        except ValueError:
            raise InvalidInput(f"bad number {raw!r}", "bad_type", line, key) from None
        if not math.isfinite(v):
            raise InvalidInput(f"must be finite, got {raw!r}", "not_finite", line, key)
        out.append(Reading(check_metric(_join(measurement, key), line), v, ts, labels))
    if not out:
        raise InvalidInput("no numeric field", "bad_type", line, "fields")
    return out


# -- Graphite plaintext -------------------------------------------------------
def parse_graphite_line(text: str, line: int | None = None, default_ts: float | None = None) -> list[Reading]:
    """``path[;tag=value...] value [timestamp]``; the dotted path becomes the metric (dots -> _)."""
    parts = text.split()
    if len(parts) not in (2, 3):
        raise InvalidInput("expected 'path value [timestamp]'", "parse", line)
    path, *tags = parts[0].split(";")
    labels = {}
    for t in tags:
        k, sep, v = t.partition("=")
        if not sep:
            raise InvalidInput(f"bad tag {t!r}", "parse", line, "tags")
        labels[_sanitize(k)] = v
    try:
        value = float(parts[1])
    except ValueError:
        raise InvalidInput(f"bad number {parts[1]!r}", "bad_type", line, "value") from None
    if not math.isfinite(value):
        raise InvalidInput(f"must be finite, got {parts[1]!r}", "not_finite", line, "value")
    if len(parts) == 3 and parts[2] != "-1":
        ts = parse_ts(parts[2], "timestamp", line)
    elif default_ts is not None:
        ts = default_ts
    else:
        raise InvalidInput("missing (and no message timestamp)", "missing_field", line, "timestamp")
    return [Reading(check_metric(_sanitize(path), line), value, ts, check_labels(labels, line))]


_GRAPHITE_RE = re.compile(r"^\S+\s+[-+0-9.eE]+(?:\s+-?[0-9.]+)?\s*$")


def sniff(body: bytes, content_type: str | None = None) -> str:
    """The format of a body: json, jsonl, influx or graphite."""
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct in ("application/json",):
        return "json"
    if ct in ("application/x-ndjson", "application/jsonl", "application/x-jsonlines"):
        return "jsonl"
    if ct in ("application/x-influx", "application/x-influxdb-line-protocol", "text/x-influx"):
        return "influx"
    if ct in ("application/x-graphite", "text/x-graphite", "text/graphite"):   # the last: collectd
        return "graphite"
    if ct and ct not in ("text/plain", "application/octet-stream", "text/x-telegraf", ""):
        raise InvalidInput(f"unsupported content type {content_type!r}", "content_type", None, "content_type")
    head = body.lstrip()[:1]
    if head in (b"{", b"["):
        stripped = body.strip()
        if head == b"{" and b"\n" in stripped and stripped.split(b"\n", 1)[1].lstrip()[:1] == b"{":
            return "jsonl"
        return "json"
    first = body.strip().split(b"\n", 1)[0].decode("utf-8", "replace")
    return "graphite" if _GRAPHITE_RE.match(first) else "influx"


def parse_body(body: bytes, content_type: str | None = None, default_ts: float | None = None,
               now: float | None = None) -> list[Reading]:
    """Every reading in one AMQP message body; any bad part rejects the whole body.

    ``default_ts`` stands in for a missing timestamp (the broker's message
    timestamp, else receive time). With ``now`` set, timestamps absurdly far
    from it are rejected.
    """
    if len(body) > MAX_BODY_BYTES:
        raise InvalidInput(f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}", "oversize")
    if not body.strip():
        raise InvalidInput("empty body", "parse")
    fmt = sniff(body, content_type)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"not UTF-8 (byte {exc.start})", "parse") from None
    out: list[Reading] = []
    if fmt == "json":
        try:
            doc = orjson.loads(body)    # 4x json's speed; it refuses NaN literals and huge integers, so
        except orjson.JSONDecodeError:  # those go through json, which reads them for a clear reason
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"bad JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", "parse",
                                   exc.lineno) from None
        items = doc if isinstance(doc, list) else [doc]
        if isinstance(doc, list) and not doc:
            raise InvalidInput("empty JSON array", "parse")
        for i, obj in enumerate(items):
            try:
                out.extend(_json_item(obj, None, default_ts))
            except InvalidInput as exc:
                raise InvalidInput(f"item {i}: {exc.message}", exc.reason, None, exc.field) from None
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if fmt == "jsonl":
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InvalidInput(f"bad JSON: {exc.msg}", "parse", n) from None
                out.extend(_json_item(obj, n, default_ts))
            elif fmt == "influx":
                out.extend(parse_influx_line(line, n, default_ts))
            else:
                out.extend(parse_graphite_line(line, n, default_ts))
    if len(out) > MAX_READINGS_PER_BODY:
        raise InvalidInput(f"{len(out)} readings in one body exceeds {MAX_READINGS_PER_BODY}", "oversize")
    if now is not None:
        for r in out:
            check_ts_bounds(r.ts, now)
    return out


# -- files ------------------------------------------------------------------
def file_format(name: str) -> str:
    low = name.lower()
    for ext, fmt in ((".csv", "csv"), (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "jsonl"),
                     (".influx", "influx"), (".lp", "influx"), (".line", "influx"),
                     (".graphite", "graphite"), (".txt", "graphite")):
        if low.endswith(ext):
            return fmt
    raise InvalidInput(f"cannot tell the format of {name!r} from its extension "
                       "(.csv, .jsonl, .influx, .graphite) — pass --format", "parse")


def parse_file_lines(lines: Iterable[str], fmt: str, default_labels: Mapping[str, str] | None = None,
                     now: float | None = None) -> Iterator[tuple[int, list[Reading] | InvalidInput]]:
    """Yield ``(line_number, readings)`` or ``(line_number, error)`` per data line, never stopping on errors.

    CSV needs a header with ``metric`` and ``value`` (``ts``/``timestamp``
    optional: receive time when absent); every other column is a label.
    """
    extra = dict(default_labels or {})
    if fmt == "csv":
        reader = csv.reader(lines)
        header: list[str] | None = None
        for row in reader:
            n = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()) or row[0].startswith("#"):
                continue
            if header is None:
                header = [h.strip() for h in row]
                missing = {"metric", "value"} - set(header)
                if missing:
                    yield n, InvalidInput(f"CSV header lacks column(s) {sorted(missing)}", "parse", n, "header")
                    return
                continue
            if len(row) != len(header):
                yield n, InvalidInput(f"{len(row)} columns, header has {len(header)}", "parse", n)
                continue
            rec = dict(zip(header, (c.strip() for c in row)))
            try:
                try:
                    value = float(rec["value"])
                except ValueError:
                    raise InvalidInput(f"not a number: {rec['value']!r}", "bad_type", n, "value") from None
                tsraw = rec.get("ts") or rec.get("timestamp")
                ts = parse_ts(tsraw, "ts", n) if tsraw else time.time()
                labels = dict(extra)
                labels.update({k.removeprefix("label."): v for k, v in rec.items()
                               if k not in ("metric", "value", "ts", "timestamp") and v != ""})
                r = Reading(check_metric(rec["metric"], n), check_value(value, n), ts, check_labels(labels, n))
                if now is not None:
                    check_ts_bounds(r.ts, now, n)
                yield n, [r]
            except InvalidInput as exc:
                yield n, exc
        return
    for n, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            if fmt == "jsonl":
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InvalidInput(f"bad JSON: {exc.msg} at column {exc.colno}", "parse", n) from None
                got = _json_item(obj, n, time.time())
            elif fmt == "influx":
                got = parse_influx_line(line, n, time.time())
            elif fmt == "graphite":
                got = parse_graphite_line(line, n, time.time())
            else:
                raise InvalidInput(f"unknown format {fmt!r}", "parse", n)
            if extra:
                got = [Reading(r.metric, r.value, r.ts, {**extra, **r.labels}) for r in got]
            if now is not None:
                for r in got:
                    check_ts_bounds(r.ts, now, n)
            yield n, got
        except InvalidInput as exc:
            yield n, exc


def encode_batch(readings: list[Reading]) -> bytes:
    """The JSON body for a batch (an array when more than one reading)."""
    if len(readings) == 1:
        return readings[0].to_json().encode()
    return ("[" + ",".join(r.to_json() for r in readings) + "]").encode()
