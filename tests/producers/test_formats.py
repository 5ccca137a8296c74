"""Every input format through the same parsing suite; bad input says which line and field."""
from __future__ import annotations

import io
import json

import pytest

from harewatch.errors import InvalidInput
from harewatch.messages import Reading
from harewatch.producers.formats import parse_body, parse_file_lines
from harewatch.times import parse_ts

TS = 1795333186.0
EXPECTED = [Reading("cpu_util", 73.2, TS, {"host": "web-01", "team": "payments"}),
            Reading("cpu_util", 12.0, TS + 60, {"host": "web-02", "team": "payments"})]

BODIES = {
    "json-array": (json.dumps([{"metric": "cpu_util", "value": 73.2, "ts": "2026-11-22T07:39:46Z",
                                "labels": {"host": "web-01", "team": "payments"}},
                               {"metric": "cpu_util", "value": 12, "ts": TS + 60,
                                "labels": {"host": "web-02", "team": "payments"}}]).encode(), None),
    "jsonl": (b'{"metric":"cpu_util","value":73.2,"ts":1795333186000,"labels":{"host":"web-01","team":"payments"}}\n'
              b'{"metric":"cpu_util","value":12,"ts":"2026-11-22T07:40:46+00:00","labels":{"host":"web-02","team":"payments"}}\n',
              None),
    "influx": (b"cpu,host=web-01,team=payments util=73.2 1795333186000000000\n"
               b"cpu,host=web-02,team=payments util=12i 1795333246000000000\n", None),
    "graphite": (b"cpu_util;host=web-01;team=payments 73.2 1795333186\n"
                 b"cpu_util;host=web-02;team=payments 12 1795333246\n", None),
    "telegraf-json": (json.dumps([{"name": "cpu", "fields": {"util": 73.2}, "tags": {"host": "web-01", "team": "payments"},
                                   "timestamp": 1795333186},
                                  {"name": "cpu", "fields": {"util": 12}, "tags": {"host": "web-02", "team": "payments"},
                                   "timestamp": 1795333246}]).encode(), "application/json"),
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_every_format_parses_to_the_same_readings(name):
    body, ct = BODIES[name]
    assert parse_body(body, ct) == EXPECTED


def test_csv_file_parses_to_the_same_readings():
    text = ("metric,value,ts,host,team\n"
            "cpu_util,73.2,2026-11-22T07:39:46Z,web-01,payments\n"
            "cpu_util,12,1795333246,web-02,payments\n")
    got = [r for _, rs in parse_file_lines(io.StringIO(text), "csv") for r in rs]
    assert got == EXPECTED


def test_collectd_json():
    body = json.dumps([{"values": [42.5], "dstypes": ["gauge"], "dsnames": ["value"], "time": 1795333186.0,
                        "interval": 10, "host": "web-01", "plugin": "cpu", "plugin_instance": "0",
                        "type": "percent", "type_instance": "user"}]).encode()
    [r] = parse_body(body)
    assert r.metric == "cpu_percent_user" and r.labels == {"host": "web-01", "plugin_instance": "0"} and r.value == 42.5


def test_missing_ts_takes_message_time():
    [r] = parse_body(b'{"metric":"m","value":1}', default_ts=123.0)
    assert r.ts == 123.0


@pytest.mark.parametrize("body,reason,field", [
    (b"\x00\xff\xfe garbage", "parse", None),
    (b'{"metric":"m"}', "missing_field", "value"),
    (b'{"value":1,"ts":1795333186}', "missing_field", "metric"),
    (b'{"metric":"m","value":"73.2","ts":1795333186}', "bad_type", "value"),
    (b'{"metric":"m","value":true,"ts":1795333186}', "bad_type", "value"),
    (b'{"metric":"m","value":NaN,"ts":1795333186}', "not_finite", "value"),
    (b'{"metric":"m","value":1e999,"ts":1795333186}', "not_finite", "value"),
    (b'{"metric":"bad metric","value":1,"ts":1795333186}', "bad_metric", "metric"),
    (b'{"metric":"m","value":1,"ts":1795333186,"labels":{"a":[1]}}', "bad_type", "labels.a"),
    (b'{"metric":"m","value":1,"ts":"yesterday"}', "bad_ts", "ts"),
    (b"[]", "parse", None),
    (b"cpu,host=a util=abc 1795333186000000000", "bad_type", "util"),
])
def test_invalid_bodies_say_why(body, reason, field):
    with pytest.raises(InvalidInput) as exc:
        parse_body(body, default_ts=TS)
    assert exc.value.reason == reason and exc.value.field == field


def test_oversize_and_time_bounds():
    with pytest.raises(InvalidInput) as exc:
        parse_body(b"[" + b"1," * (600 * 1024) + b"1]")
    assert exc.value.reason == "oversize"
    with pytest.raises(InvalidInput) as exc:
        parse_body(b'{"metric":"m","value":1,"ts":4102444800}', now=TS)
    assert exc.value.reason == "ts_out_of_range"


def test_unknown_content_type_is_rejected():
    with pytest.raises(InvalidInput) as exc:
        parse_body(b"x", "image/png")
    assert exc.value.reason == "content_type"


def test_bad_lines_are_reported_and_skipped():
    text = "metric,value,ts\nm,1,1795333186\nm,oops,1795333186\nm,2,1795333246\n"
    out = list(parse_file_lines(io.StringIO(text), "csv"))
    assert [n for n, r in out if isinstance(r, InvalidInput)] == [3]
    assert [r[0].value for n, r in out if not isinstance(r, InvalidInput)] == [1.0, 2.0]
    assert "line 3" in str(out[1][1]) and "'value'" in str(out[1][1])


@pytest.mark.parametrize("raw,expected", [("2026-11-22T07:39:46Z", TS), ("2026-11-22 07:39:46", TS),
                                          (TS, TS), (TS * 1000, TS), (TS * 1e9, TS), ("1795333186", TS)])
def test_timestamps(raw, expected):
    assert parse_ts(raw) == pytest.approx(expected)
