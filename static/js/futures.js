/* The forward curve of the futures board (market/templates/market/futures/board.html):
   each listed future's settlement price drawn across its delivery period, months, quarters
   and years as three series. Data from a json_script block; no inline script (CSP). */
(function () {
  "use strict";
  var box = document.getElementById("forward-curve");
  var source = document.getElementById("forward-curve-data");
  if (!box || !source || !window.Plotly) { return; }
  var points = JSON.parse(source.textContent);
  var styles = { M: ["#1f5fbf", 3], Q: ["#0f7a3f", 5], Y: ["#8a4fbf", 7] };
  var traces = ["M", "Q", "Y"].map(function (kind) {
    var x = [], y = [], text = [];
    points.filter(function (p) { return p.kind === kind; }).forEach(function (p) {
      x.push(p.start, p.end, null);
      y.push(Number(p.price), Number(p.price), null);
      text.push(p.symbol + ": " + p.price, p.symbol + ": " + p.price, null);
    });
    var names = { M: box.dataset.labelM, Q: box.dataset.labelQ, Y: box.dataset.labelY };
    return { x: x, y: y, text: text, hoverinfo: "text", mode: "lines", name: names[kind] || kind,
             line: { color: styles[kind][0], width: styles[kind][1] } };
  }).filter(function (trace) { return trace.x.length; });
  window.Plotly.newPlot(box, traces, {
    margin: { l: 56, r: 12, t: 8, b: 36 }, showlegend: true, legend: { orientation: "h", y: -0.2 },
    // Not from zero: the curve's shape (contango, backwardation) is what readers look for.
    yaxis: { title: { text: box.dataset.yTitle || "" }, tickformat: ".2f" }, xaxis: { type: "date" }
  }, { displayModeBar: false, responsive: true });
}());
