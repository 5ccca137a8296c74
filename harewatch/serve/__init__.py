"""``harewatch serve``: harewatch's pages and Alertmanager's v2 HTTP API, over the router's state in Redis
and the broker's management API.

- :mod:`.view`: what the pages and the API show, read from the stores (alerts with their receivers and
  silenced / inhibited status, groups, series, dead letters);
- :mod:`.amapi`: Alertmanager's JSON shapes (pure);
- :mod:`.guard`: who may write (token, basic auth, loopback, read-only) and CSRF;
- :mod:`.app`: the Flask app (routes for the API and the pages); ``pages/`` its templates, ``static/``
  the vendored uPlot and htmx.
"""
