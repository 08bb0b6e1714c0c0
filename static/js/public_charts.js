/* The charts of the public price pages (market/templates/market/public/): each element with the
   class public-chart names its json_script block (data-source) -- the dataset's rows exactly as the
   CSV and JSON downloads carry them -- and the fields for x, y and the series (one line each).
   Hourly x values are the Berlin times without their offset (plotly has no time zones). No inline
   script (CSP). */
(function () {
  "use strict";
  if (!window.Plotly) { return; }
  var colours = ["#1f5fbf", "#0f7a3f", "#c05621", "#8a4fbf", "#b83280", "#2c7a7b"];
  var narrow = window.matchMedia("(max-width: 640px)").matches;
  document.querySelectorAll(".public-chart").forEach(function (box) {
    var source = document.getElementById(box.dataset.source);
    if (!source) { return; }
    var rows = JSON.parse(source.textContent);
    var series = {};
    var order = [];
    rows.forEach(function (row) {
      var name = row[box.dataset.series];
      if (!series[name]) { series[name] = { x: [], y: [] }; order.push(name); }
      var x = String(row[box.dataset.x]);
      series[name].x.push(x.length > 16 ? x.slice(0, 16) : x);
      series[name].y.push(row[box.dataset.y] === null ? null : Number(row[box.dataset.y]));
    });
    var traces = order.map(function (name, i) {
      return { x: series[name].x, y: series[name].y, name: name, mode: "lines", type: "scatter",
               line: { color: colours[i % colours.length], width: 2, shape: box.dataset.shape || "linear" } };
    });
    var layout = {
      margin: { l: 52, r: 10, t: 8, b: narrow ? 60 : 40 }, showlegend: order.length > 1,
      legend: { orientation: "h", y: narrow ? -0.35 : -0.18 },
      xaxis: { type: "date", nticks: narrow ? 4 : 8 },  // German dates as the tables write them
      yaxis: { title: { text: narrow ? "" : (box.dataset.yTitle || "") }, zeroline: box.dataset.zero === "1" }
    };
    if (document.documentElement.lang !== "en") {
      layout.xaxis.tickformat = box.dataset.shape === "hv" ? "%d.%m. %H:%M" : "%d.%m.%Y";
      layout.xaxis.hoverformat = layout.xaxis.tickformat;
    }
    window.Plotly.newPlot(box, traces, layout, { displayModeBar: false, responsive: true });
  });
}());
