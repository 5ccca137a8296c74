"""The chart data the pages draw (pure): the band around an anomaly is the event's own lower and upper."""
from __future__ import annotations

from harewatch.messages import Alert, AnomalyEvent
from harewatch.serve.app import alert_chart
from harewatch.serve.view import AlertView


def test_alert_chart_draws_the_asymmetric_band_of_the_event() -> None:
    """A series that bursts up has a band wider above than below (two tails); the chart draws it so."""
    ev = AnomalyEvent(series="s1", metric="requests", labels={"host": "a"}, type="spike", severity="warning",
                      ts=1_700_000_100.0, value=400.0, expected=110.0, lower=100.0, upper=170.0, score=0.7,
                      team="web", window={"ts": ["2023-11-14T22:10:00Z", "2023-11-14T22:15:00Z"],
                                          "observed": [101.0, 400.0], "expected": [100.0, 110.0]})
    alert = Alert(labels={"alertname": "requests", "host": "a"}, fingerprint="f", starts_at=ev.ts,
                  ends_at=ev.ts + 300, last_seen=ev.ts, anomaly=ev)
    chart = alert_chart(AlertView(alert, ("web",), (), ()))
    assert chart["lower"] == [90.0, 100.0] and chart["upper"] == [160.0, 170.0]
    assert chart["observed"] == [101.0, 400.0] and chart["marks"] == [[ev.ts, 400.0]]
