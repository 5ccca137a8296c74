// harewatch serve: draws each .chart from its data-chart JSON with uPlot (observed, expected, band,
// anomalous points), again after htmx swaps a part of the page in; asks before forms marked data-confirm.
(function () {
  "use strict";

  function nearest(ts, t) {
    var best = -1, bestd = Infinity;
    for (var i = 0; i < ts.length; i++) {
      var d = Math.abs(ts[i] - t);
      if (d < bestd) { bestd = d; best = i; }
    }
    return best;
  }

  function draw(el) {
    if (el.dataset.drawn) return;
    var d;
    try { d = JSON.parse(el.dataset.chart || "{}"); } catch (e) { d = {}; }
    if (!d.ts || !d.ts.length) { el.textContent = "no points to draw yet"; el.dataset.drawn = "1"; return; }
    var n = d.ts.length, marks = new Array(n).fill(null);
    (d.marks || []).forEach(function (m) {      // [time, value]: drawn at the anomaly's own value
      var i = nearest(d.ts, m[0]);
      if (i >= 0) marks[i] = m[1];
    });
    var lower = d.lower && d.lower.length === n ? d.lower : new Array(n).fill(null);
    var upper = d.upper && d.upper.length === n ? d.upper : new Array(n).fill(null);
    var data = [d.ts, d.observed, d.expected, lower, upper, marks];
    var width = Math.max(240, el.clientWidth || 320);
    var height = el.classList.contains("tall") ? 280 : 160;
    var opts = {
      width: width, height: height, legend: { show: el.classList.contains("tall") },
      cursor: { points: { size: 6 } },
      scales: { x: { time: true } },
      series: [
        {},
        { label: "observed", stroke: "#2f6feb", width: 1.5, spanGaps: false },
        { label: "expected", stroke: "#8a94a6", width: 1, dash: [4, 3] },
        { label: "band low", stroke: "rgba(0,0,0,0)", points: { show: false } },
        { label: "band high", stroke: "rgba(0,0,0,0)", points: { show: false } },
        { label: "anomaly", stroke: "#c62828", width: 0, paths: function () { return null; },
          points: { show: true, size: 9, fill: "#c62828", stroke: "#c62828" } }
      ],
      bands: [{ series: [4, 3], fill: "rgba(138,148,166,0.18)" }],
      axes: [{}, { size: 56 }]
    };
    el.textContent = "";
    var plot = new uPlot(opts, data, el);
    el.dataset.drawn = "1";
    el.setAttribute("data-points", String(n));
    window.addEventListener("resize", function () {
      plot.setSize({ width: Math.max(240, el.clientWidth || width), height: height });
    });
  }

  function drawAll(root) {
    (root || document).querySelectorAll(".chart").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSwap", function (e) { drawAll(e.target); });
  document.addEventListener("submit", function (e) {
    var f = e.target;
    if (f.dataset && f.dataset.confirm && !window.confirm(f.dataset.confirm)) e.preventDefault();
  }, true);
})();
