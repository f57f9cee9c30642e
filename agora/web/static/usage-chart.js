// Draws the charts of the consoles from JSON the server put in the page (a <script type="application/json">
// block; no inline script runs). The numbers are also in a table beside each chart, so nothing is lost
// without JavaScript.
//
// - The buyer's usage chart: <canvas id="usage-chart"> with #usage-data = {days, series: [{dimension, values}]}.
// - Any other chart: <canvas data-chart="ID"> with #ID = {labels, series: [{label, values}], money?, stacked?}.
//   `money` charts hold decimal strings (exact on the server; drawn as numbers) and label their axis in dollars.
(function () {
  "use strict";
  var colours = ["#0a58b5", "#136c3a", "#a64b00", "#6b3fa0", "#a61b1b", "#12355b", "#5c6b00", "#8a2d6b"];

  function read(id) {
    var block = document.getElementById(id);
    return block ? JSON.parse(block.textContent) : null;
  }

  function bar(canvas, labels, series, options) {
    var money = options.money;
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: labels,
        datasets: series.map(function (s, i) {
          return {
            label: s.label,
            data: s.values.map(Number),
            backgroundColor: colours[i % colours.length]
          };
        })
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: {
          x: { stacked: !!options.stacked },
          y: {
            stacked: !!options.stacked,
            beginAtZero: true,
            ticks: money
              ? { callback: function (v) { return (v < 0 ? "−$" : "$") + Math.abs(v).toLocaleString("en-US"); } }
              : { precision: 0 }
          }
        },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }

  function draw() {
    if (typeof Chart === "undefined") return;
    var buyer = document.getElementById("usage-chart");
    var usage = read("usage-data");
    if (buyer && usage && usage.days) {
      bar(
        buyer,
        usage.days.map(function (d) { return d.slice(5); }),
        usage.series.map(function (s) { return { label: s.dimension, values: s.values }; }),
        {}
      );
    }
    var canvases = document.querySelectorAll("canvas[data-chart]");
    for (var i = 0; i < canvases.length; i++) {
      var data = read(canvases[i].getAttribute("data-chart"));
      if (!data || !data.series || !data.series.length) continue;
      var labels = data.labels.map(function (l) { return l.length === 10 ? l.slice(5) : l; });
      bar(canvases[i], labels, data.series, { money: data.money, stacked: data.stacked });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
