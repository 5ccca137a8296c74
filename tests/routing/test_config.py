"""Config loading: good files load, bad ones fail naming file, line and field."""
from __future__ import annotations

import pytest

from harewatch.errors import ConfigError
from harewatch.routing.config import load_config, parse_config
from harewatch.workers.detection import DetectorSettings
from tests.conftest import ROOT


def test_shipped_example_loads():
    cfg = load_config(ROOT / "routing" / "routes.yaml")
    assert {"cpu_util", "http_latency_ms", "orders_per_min"} <= set(cfg.metrics)
    assert set(cfg.channels) >= {"email", "slack", "webhook", "pagerduty"}
    cpu = cfg.metric("cpu_util")
    assert cpu.periods == (86400.0, 604800.0) and cpu.direction == "up" and cpu.min_deviation == 5
    assert cfg.metric("http_latency_ms").confirm_k == 2
    # unknown metric: the defaults
    assert cfg.metric("disk_free").periods is None and cfg.metric("disk_free").queue is None


def err(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "my.yaml", env={})
    return exc.value


def test_bad_value_names_line_and_field():
    e = err("metrics:\n  cpu_util:\n    periods: [1d]\n    direction: sideways\n")
    assert (e.file, e.line, e.field) == ("my.yaml", 4, "metrics.cpu_util.direction")
    assert "sideways" in str(e) and str(e).startswith("my.yaml:4: metrics.cpu_util.direction:")


def test_bad_duration_and_unknown_field():
    e = err("metrics:\n  cpu:\n    periods: [1day]\n")
    assert e.line == 3 and e.field == "metrics.cpu.periods" and "1day" in str(e)
    e = err("metrics:\n  cpu:\n    perods: [1d]\n")
    assert e.line == 3 and e.field == "metrics.cpu.perods" and "unknown field" in str(e)


def test_syntax_error_names_line():
    e = err("metrics:\n  cpu: [1d\n  mem: {}\n")
    assert e.file == "my.yaml" and e.line in (3, 4) and "YAML" in str(e)


def test_unknown_channel_and_duplicate_key():
    e = err("channels: [email, carrier_pigeon]\n")
    assert e.field == "channels[1]" and e.line == 1
    e = err("metrics:\n  cpu: {}\n  cpu: {}\n")
    assert e.line == 3 and "duplicate" in str(e)


def test_missing_env_reference_is_named():
    e = err("metrics:\n  cpu:\n    description: ${NOT_SET_ANYWHERE}\n")
    assert "NOT_SET_ANYWHERE" in str(e) and e.line == 3
    cfg = parse_config("metrics:\n  cpu:\n    description: ${X:-fallback}\n", "f.yaml", env={})
    assert cfg.metric("cpu").description == "fallback"


def test_missing_file():
    with pytest.raises(ConfigError) as exc:
        load_config("/nonexistent/harewatch.yaml")
    assert "/nonexistent/harewatch.yaml" in str(exc.value) and "not found" in str(exc.value)


def test_missing_env_reference_field_path_has_no_stray_dot():
    e = err("receivers:\n  - name: x\n    webhook_configs: [{url: '${NOT_SET_ANYWHERE}'}]\n")
    assert e.field == "receivers[0].webhook_configs[0].url" and e.line == 3


def test_alias_bomb_is_a_config_error_not_an_out_of_memory(tmp_path):
    """A 'billion laughs' file: nine aliases nested eight deep would expand to 9**8 values."""
    lines = ['global:', '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefgh":
        lines.append(f"  {name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\nroute: {receiver: x}\nreceivers: [{name: x}]\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.file == str(path) and exc.value.line is not None and "expands to more than" in str(exc.value)


def test_deep_nesting_is_a_config_error_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("global:\n  x: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.line == 2 and "nested more than" in str(exc.value)
    block = "".join("  " * i + f"k{i}:\n" for i in range(1, 400)) + "  " * 400 + "v: 1\n"
    path.write_text("global:\n" + block)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert "nested more than" in str(exc.value)


def test_selfwatch_and_ownership_are_read_once_on_load():
    cfg = parse_config("selfwatch: {team: sre, no_readings_after: 15m}\n"
                       "teams:\n  payments:\n    owns: {metrics: ['payments_*']}\n", "f.yaml", env={})
    assert (cfg.selfwatch.team, cfg.selfwatch.no_readings_after) == ("sre", 900.0)
    assert [(r.team, r.metrics) for r in cfg.ownership] == [("payments", ("payments_*",))]
    e = err("selfwatch:\n  no_readings_after: soon\n")
    assert (e.line, e.field) == (2, "selfwatch.no_readings_after")


def test_series_lifecycle_settings():
    cfg = parse_config("defaults:\n  max_series: 20000\n  retire_after: 3d\nmetrics:\n  pods: {max_series: unlimited, "
                       "retire_after: never}\n  jobs: {retire_after: auto}\n  hosts: {}\n", "my.yaml", env={})
    assert (cfg.metric("pods").max_series, cfg.metric("pods").retire_after) == (None, float("inf"))
    assert (cfg.metric("jobs").max_series, cfg.metric("jobs").retire_after) == (20000, None)
    assert (cfg.metric("hosts").max_series, cfg.metric("hosts").retire_after) == (20000, 3 * 86400)
    assert parse_config("metrics: {}\n", "my.yaml", env={}).metric("x").max_series == 50_000
    e = err("metrics:\n  cpu:\n    max_series: 0\n")
    assert (e.line, e.field) == (3, "metrics.cpu.max_series") and "unlimited" in str(e)
    e = err("metrics:\n  cpu:\n    retire_after: 10m\n")
    assert (e.line, e.field) == (3, "metrics.cpu.retire_after") and "at least 1h" in str(e)
    e = err("metrics:\n  cpu:\n    retire_after: soon\n")
    assert e.field == "metrics.cpu.retire_after" and "soon" in str(e)


def test_a_metric_counted_in_local_time_names_its_time_zone():
    cfg = parse_config("defaults:\n  timezone: Europe/Berlin\nmetrics:\n  orders: {}\n  cpu: {timezone: UTC}\n"
                       "  shop_eu:\n    timezone: America/New_York\n", "my.yaml", env={})
    assert cfg.metric("orders").timezone == "Europe/Berlin"
    assert cfg.metric("cpu").timezone is None
    assert DetectorSettings.from_metric(cfg.metric("shop_eu")).timezone == "America/New_York"
    assert parse_config("metrics: {}\n", "my.yaml", env={}).metric("x").timezone is None
    e = err("metrics:\n  orders:\n    periods: auto\n    timezone: Europe/Berln\n")
    assert (e.line, e.field) == (4, "metrics.orders.timezone") and "Europe/Berln" in str(e)
