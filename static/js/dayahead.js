/* The charts of the public day-ahead page (market/templates/market/dashboard/dayahead.html).
 *
 * The page carries the API's own payloads as JSON (json_script: the
 * Content-Security-Policy allows no inline script):
 *
 *  - #dayahead-hours: the hours of the results, or of the indicative results:
 *    the price as a line and the GPUs as bars per hour label. The x axis is a
 *    category axis of the labels, so a 23-hour day has 23 places and the
 *    autumn day shows 02A and 02B side by side. An hour without bids has no
 *    price: a gap in the line.
 *  - #dayahead-curves-data: one hour's aggregated buy and sell curves as steps
 *    (GPUs across, EUR/GPUh up) with the clearing point marked. The hour
 *    picker swaps #curves with htmx; the curves are drawn again after the
 *    swap. A click on an hour in the price chart picks that hour.
 *
 * The class and zone form submits itself when a choice changes. Numbers are
 * formatted for the page's language.
 */
(function () {
  "use strict";

  var root = document.querySelector("[data-dayahead]");
  if (!root) return;

  var lang = document.documentElement.lang || "de";
  var text = JSON.parse(document.getElementById("dayahead-i18n").textContent);
  var priceFormat = new Intl.NumberFormat(lang, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  var qtyFormat = new Intl.NumberFormat(lang);
  var BLUE = "#1b56c7";
  var BUY = "#0f7a3f";
  var SELL = "#c0352b";

  function payload(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function narrow(node) { return node.clientWidth < 520; }

  function baseLayout(node, height) {
    // The legend above the plot, in a top margin high enough for it to wrap
    // onto two or three lines on a phone.
    return {
      margin: { l: 52, r: 52, t: narrow(node) ? 72 : 32, b: 40 }, height: node.clientHeight || height,
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, sans-serif", size: 12, color: "#566275" },
      separators: lang === "de" ? ",." : ".,",
      showlegend: true,
      legend: { orientation: "h", x: 0, xanchor: "left", y: 1.02, yanchor: "bottom", font: { size: 11 } },
      hovermode: "closest"
    };
  }

  var CONFIG = { displayModeBar: false, responsive: true };

  // Going back through the hours the picker pushed, htmx puts back a copy of
  // the page: its chart nodes hold lifeless copies of old drawings, and
  // plotly knows nothing of them. Empty such a node before drawing into it.
  function ready(node) {
    if (!node._fullLayout) node.replaceChildren();
  }

  /* ---------- prices and volumes per hour ---------- */

  function drawHours() {
    var node = document.getElementById("dayahead-chart");
    var hours = payload("dayahead-hours");
    if (!node || !hours || !window.Plotly) return;
    var indicative = node.hasAttribute("data-indicative");
    var labels = hours.map(function (h) { return h.hour; });
    var prices = hours.map(function (h) { return h.price === null ? null : parseFloat(h.price); });
    var volumes = hours.map(function (h) { return h.volume; });
    var priceName = indicative ? text.indicative_price : text.price;
    var volumeName = indicative ? text.indicative_volume : text.volume;
    var volume = {
      type: "bar", x: labels, y: volumes, yaxis: "y", name: volumeName + " (" + text.gpus + ")",
      marker: { color: indicative ? "rgba(138, 83, 0, 0.22)" : "rgba(27, 86, 199, 0.22)" },
      hovertemplate: text.hour + " %{x}<br>%{y:,} " + text.gpus + "<extra>" + volumeName + "</extra>"
    };
    var price = {
      type: "scatter", mode: "lines+markers", x: labels, y: prices, yaxis: "y2", name: priceName + " (EUR/GPUh)",
      connectgaps: false, line: { color: indicative ? "#8a5300" : BLUE, width: 2, dash: indicative ? "dash" : "solid" },
      marker: { size: 5 },
      hovertemplate: text.hour + " %{x}<br>%{y:.2f} EUR/GPUh<extra>" + priceName + "</extra>"
    };
    var layout = baseLayout(node, 300);
    // On a phone every other hour is labelled, upright: 25 labels do not fit.
    layout.xaxis = { type: "category", gridcolor: "#eef1f5", automargin: true,
                     tickangle: narrow(node) ? -90 : 0, dtick: narrow(node) ? 2 : 1, tickfont: { size: narrow(node) ? 10 : 12 } };
    if (narrow(node)) { layout.margin.l = 44; layout.margin.r = 36; }
    // The volume bars on the first axis (right), the prices on the second
    // (left): an overlaying axis is drawn on top, and the line must not hide
    // behind the bars.
    // Headroom above the highest bar, so that the bars stay under the price line's legend.
    var highest = Math.max.apply(null, [1].concat(volumes));
    layout.yaxis = { title: { text: text.gpus }, side: "right", showgrid: false, automargin: true, tickmode: "auto",
                     range: [0, highest * 1.2] };
    layout.yaxis2 = { title: { text: "EUR/GPUh" }, overlaying: "y", side: "left", tickformat: ".2f", tickmode: "auto",
                      gridcolor: "#eef1f5", zeroline: false, rangemode: "tozero", automargin: true };
    layout.bargap = 0.25;
    ready(node);
    window.Plotly.react(node, [volume, price], layout, CONFIG);
    if (!node.rbClickBound) {  // a property, not an attribute: a page restored from history has no listener
      node.rbClickBound = true;
      node.on("plotly_click", function (event) {
        var select = document.getElementById("curve-hour");
        if (!select || !event.points.length) return;
        select.value = event.points[0].x;
        select.dispatchEvent(new Event("change", { bubbles: true }));
      });
    }
  }

  /* ---------- aggregated curves of one hour ---------- */

  // [[price, cumulative GPUs], ...] -> the step line's corners: the GPUs from
  // the previous point's total to this point's total are bid (or offered) at
  // this point's price.
  function steps(curve) {
    var xs = [];
    var ys = [];
    var before = 0;
    curve.forEach(function (point) {
      var p = parseFloat(point[0]);
      xs.push(before, point[1]);
      ys.push(p, p);
      before = point[1];
    });
    return { x: xs, y: ys };
  }

  function drawCurves() {
    var node = document.getElementById("dayahead-curves");
    var curves = payload("dayahead-curves-data");
    if (!node || !curves || !window.Plotly) return;
    var buy = steps(curves.buy_curve);
    var sell = steps(curves.sell_curve);
    function trace(points, name, color) {
      return {
        type: "scatter", mode: "lines", x: points.x, y: points.y, name: name, line: { color: color, width: 2 },
        hovertemplate: "%{x:,} " + text.gpus + " · %{y:.2f} EUR/GPUh<extra>" + name + "</extra>"
      };
    }
    var traces = [trace(buy, text.buy, BUY), trace(sell, text.sell, SELL)];
    var layout = baseLayout(node, 320);
    layout.xaxis = { title: { text: text.gpus }, gridcolor: "#eef1f5", zeroline: false, rangemode: "tozero",
                     automargin: true };
    layout.yaxis = { title: { text: "EUR/GPUh" }, tickformat: ".2f", gridcolor: "#eef1f5", zeroline: false,
                     automargin: true };
    layout.margin.r = 16;
    if (curves.price !== null) {
      var price = parseFloat(curves.price);
      traces.push({
        type: "scatter", mode: "markers", x: [curves.volume], y: [price], name: text.clearing,
        marker: { size: 12, color: BLUE, line: { color: "#ffffff", width: 2 } },
        hovertemplate: text.clearing + "<br>" + qtyFormat.format(curves.volume) + " " + text.gpus + " · " +
          priceFormat.format(price) + " EUR/GPUh<extra></extra>"
      });
      var dotted = { color: BLUE, width: 1, dash: "dot" };
      layout.shapes = [
        { type: "line", xref: "x", yref: "paper", x0: curves.volume, x1: curves.volume, y0: 0, y1: 1, line: dotted },
        { type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: price, y1: price, line: dotted }
      ];
    }
    ready(node);
    window.Plotly.react(node, traces, layout, CONFIG);
  }

  function markChosenHour() {
    var select = document.getElementById("curve-hour");
    if (!select) return;
    document.querySelectorAll(".hour-table tr[data-hour]").forEach(function (row) {
      row.classList.toggle("is-chosen", row.dataset.hour === select.value);
    });
  }

  /* ---------- forms ---------- */

  // Delegated, so that it still works on a page htmx restored from history.
  document.addEventListener("change", function (event) {
    var choice = event.target.closest("form[data-autosubmit]");
    if (!choice) return;
    if (choice.requestSubmit) choice.requestSubmit();
    else choice.submit();
  });

  document.body.addEventListener("htmx:afterSettle", function () {
    drawCurves();
    markChosenHour();
  });

  function start() {
    drawHours();
    drawCurves();
  }
  // Back and forward through the hours the picker pushed (see ready()).
  document.body.addEventListener("htmx:historyRestore", function () {
    start();
    markChosenHour();
  });
  // plotly.min.js and this file are both deferred, in order: Plotly is there by DOMContentLoaded.
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
