from __future__ import annotations

import pytest

from harewatch.durations import format_duration, parse_duration
from harewatch.errors import ConfigError
from harewatch.settings import load_settings


def test_env_is_read_and_validated():
    s = load_settings({"AMQP_URL": "amqps://u:p@mq.example:5671/prod", "HAREWATCH_PREFIX": "prod.",
                       "REDIS_URL": "redis://r:6379/2", "SENTRY_DSN": "https://k@sentry/1"})
    assert s.vhost == "prod" and s.prefix == "prod." and s.sentry_dsn
    assert s.ssl_context() is not None
    assert load_settings({}).vhost == "/"


@pytest.mark.parametrize("env,var", [({"AMQP_URL": "http://x"}, "AMQP_URL"),
                                     ({"HAREWATCH_PREFIX": "a b"}, "HAREWATCH_PREFIX"),
                                     ({"HAREWATCH_METRICS_PORT": "nine"}, "HAREWATCH_METRICS_PORT"),
                                     ({"HAREWATCH_AMQP_VERIFY": "maybe"}, "HAREWATCH_AMQP_VERIFY")])
def test_bad_setting_names_variable(env, var):
    with pytest.raises(ConfigError) as exc:
        load_settings(env)
    assert exc.value.field == var


def test_durations_round_trip():
    assert parse_duration("1h30m") == 5400 and parse_duration("1w") == 604800 and parse_duration(90) == 90
    assert format_duration(5400) == "1h30m" and format_duration(86400) == "1d" and format_duration(0) == "0s"
    with pytest.raises(ValueError):
        parse_duration("5 minutes")


def test_json_logs_carry_fields(capsys):
    import json
    import logging

    from harewatch.logs import setup_logging
    setup_logging(load_settings({"HAREWATCH_LOG_FORMAT": "json", "HAREWATCH_LOG_LEVEL": "INFO"}))
    logging.getLogger("harewatch.test").info("batch done", extra={"readings": 42})
    line = capsys.readouterr().err.strip().splitlines()[-1]
    doc = json.loads(line)
    assert doc["message"] == "batch done" and doc["readings"] == 42 and doc["level"] == "info"
    logging.getLogger().handlers.clear()
