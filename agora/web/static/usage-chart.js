// Draws the usage chart of /account/subscriptions/{id} from the JSON the server put in #usage-data. The
// numbers are also in the table beside it, so nothing is lost without JavaScript.
(function () {
  "use strict";
  function draw() {
    var data = document.getElementById("usage-data");
    var canvas = document.getElementById("usage-chart");
    if (!data || !canvas || typeof Chart === "undefined") return;
    var usage = JSON.parse(data.textContent);
    var colours = ["#0a58b5", "#136c3a", "#a64b00", "#6b3fa0", "#a61b1b", "#12355b"];
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: usage.days.map(function (d) { return d.slice(5); }),
        datasets: usage.series.map(function (s, i) {
          return { label: s.dimension, data: s.values, backgroundColor: colours[i % colours.length] };
        })
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: { x: { stacked: false }, y: { beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { position: "bottom" } }
      }
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
