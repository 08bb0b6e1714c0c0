/* The policy indicators' charts (market/templates/market/indicators/): market activity,
   supply concentration and regions. Each page puts the open dataset's rows (exactly what
   /api/v1/open-data/<slug>/ serves for the page's parameters) in #indicator-data and the
   words in #indicator-text (json_script; no inline script, CSP). A withheld value is null
   and is drawn as a gap, never as zero. */
(function () {
  "use strict";
  var source = document.getElementById("indicator-data");
  var words = document.getElementById("indicator-text");
  if (!source || !words || !window.Plotly) { return; }
  var rows = JSON.parse(source.textContent);
  var text = JSON.parse(words.textContent);
  var phone = window.matchMedia("(max-width: 600px)").matches;
  var config = { displayModeBar: false, responsive: true };
  var colors = { intraday: "#1f5fbf", dayahead: "#0f7a3f", futures: "#8a4fbf", oi: "#c05621",
                 buy: "#1f5fbf", sell: "#c0392b", startupBuy: "#5d9cec", startupSell: "#e67e73" };

  function num(value) { return value === null || value === undefined ? null : Number(value); }
  function column(name) { return rows.map(function (row) { return num(row[name]); }); }
  function percent(name) {
    return rows.map(function (row) { var v = num(row[name]); return v === null ? null : Math.round(v * 10000) / 100; });
  }
  function layout(extra) {
    var base = { margin: { l: 56, r: phone ? 12 : 56, t: 8, b: 40 }, showlegend: true,
                 legend: { orientation: "h", y: phone ? -0.35 : -0.2 }, xaxis: { type: "date" } };
    Object.keys(extra).forEach(function (key) { base[key] = extra[key]; });
    return base;
  }
  // An axis of whole numbers (GPU-hours, members): with small values plotly puts ticks at
  // 0.2, 0.4 ... which ",d" rounds to "0 0 1 1 1"; below ten, one tick per whole number from
  // zero (and 0 to 1 when every value is zero, e.g. no future traded).
  function wholeAxis(values, extra) {
    var top = 0;
    values.forEach(function (v) { if (v !== null && v > top) { top = v; } });
    var axis = { rangemode: "tozero", tickformat: ",d" };
    if (top < 10) { axis.range = [0, Math.max(1, top) * 1.05]; axis.dtick = 1; axis.tick0 = 0; }
    Object.keys(extra || {}).forEach(function (key) { axis[key] = extra[key]; });
    return axis;
  }
  function draw(id, traces, extra) {
    var box = document.getElementById(id);
    if (box) { window.Plotly.newPlot(box, traces, layout(extra), config); }
  }
  var x = rows.map(function (row) { return row.period_start; });

  // Market activity: volume per segment (stacked bars) with open interest; members; shares.
  draw("activity-volume", [
    { type: "bar", name: text.intraday, x: x, y: column("volume_intraday_gpuh"), marker: { color: colors.intraday } },
    { type: "bar", name: text.dayahead, x: x, y: column("volume_dayahead_gpuh"), marker: { color: colors.dayahead } },
    { type: "bar", name: text.futures, x: x, y: column("volume_futures_gpuh"), marker: { color: colors.futures } },
    { type: "scatter", mode: "lines+markers", name: text.open_interest, x: x, y: column("open_interest_gpuh"),
      yaxis: "y2", line: { color: colors.oi } }
  ], { barmode: "stack",
       yaxis: wholeAxis(column("volume_total_gpuh"), { title: { text: text.gpuh } }),
       yaxis2: wholeAxis(column("open_interest_gpuh"), { overlaying: "y", side: "right", showgrid: false, visible: !phone }) });
  draw("activity-members", [
    { type: "scatter", mode: "lines+markers", name: text.buyers, x: x, y: column("active_buyers"), line: { color: colors.buy } },
    { type: "scatter", mode: "lines+markers", name: text.sellers, x: x, y: column("active_sellers"), line: { color: colors.sell } }
  ], { yaxis: wholeAxis(column("active_buyers").concat(column("active_sellers")), { title: { text: text.members } }) });
  draw("activity-shares", [
    { type: "scatter", mode: "lines+markers", name: text.sme_buy, x: x, y: percent("sme_buy_share"), line: { color: colors.buy } },
    { type: "scatter", mode: "lines+markers", name: text.sme_sell, x: x, y: percent("sme_sell_share"), line: { color: colors.sell } },
    { type: "scatter", mode: "lines+markers", name: text.startup_buy, x: x, y: percent("startup_buy_share"),
      line: { color: colors.startupBuy, dash: "dot" } },
    { type: "scatter", mode: "lines+markers", name: text.startup_sell, x: x, y: percent("startup_sell_share"),
      line: { color: colors.startupSell, dash: "dot" } }
  ], { yaxis: { title: { text: text.share }, range: [0, 100] } });

  // Supply concentration: the HHI on its 0-10,000 scale, the two thresholds as lines.
  var hhiBox = document.getElementById("concentration-hhi");
  if (hhiBox) {
    var moderate = Number(hhiBox.dataset.moderate), high = Number(hhiBox.dataset.high);
    var threshold = function (value, color) {
      return { type: "line", xref: "paper", x0: 0, x1: 1, y0: value, y1: value, line: { color: color, dash: "dash", width: 1.5 } };
    };
    draw("concentration-hhi", [
      { type: "scatter", mode: "lines+markers", name: text.hhi, x: x, y: column("hhi"), line: { color: colors.intraday } }
    ], { yaxis: { title: { text: text.scale }, range: [0, 10000], tickformat: ",d" }, showlegend: false,
         shapes: [threshold(moderate, "#b7791f"), threshold(high, "#c0392b")],
         annotations: [
           { xref: "paper", x: 0, xanchor: "left", y: moderate, yanchor: "bottom", text: text.moderate, showarrow: false,
             font: { size: 11, color: "#8a5a00" } },
           { xref: "paper", x: 0, xanchor: "left", y: high, yanchor: "bottom", text: text.high, showarrow: false,
             font: { size: 11, color: "#9b2c22" } }
         ] });
  }

  // Regions: a tile-grid map of the 16 states, one equal tile each at its approximate place
  // (row and column from the page, market.views.indicators.STATE_TILES), coloured by the
  // chosen figure. Grey tiles (shapes under the heatmap) are withheld or have no value; the
  // tile's text and hover show the figure exactly as the table beside it does.
  var mapBox = document.getElementById("regions-map");
  var mapSource = document.getElementById("regions-map-data");
  if (mapBox && mapSource) {
    var map = JSON.parse(mapSource.textContent);
    var tiles = map.tiles;
    var nRows = 1 + Math.max.apply(null, tiles.map(function (t) { return t.row; }));
    var nCols = 1 + Math.max.apply(null, tiles.map(function (t) { return t.col; }));
    var steps = function (n) { var out = []; for (var i = 0; i < n; i += 1) { out.push(i); } return out; };
    var drawMap = function (measure) {
      var label = map.measures[measure];
      var z = steps(nRows).map(function () { return steps(nCols).map(function () { return null; }); });
      var top = 0;
      tiles.forEach(function (t) {
        var v = num(t.values[measure]);
        z[t.row][t.col] = v;
        if (v !== null && v > top) { top = v; }
      });
      var hasValue = tiles.some(function (t) { return num(t.values[measure]) !== null; });
      var format = measure === "average_price" ? ",.2f" : ",d";
      // The colour bar lies under the map, so the tiles keep the whole width (beside the table, or on a phone).
      var bar = { orientation: "h", x: 0.5, xanchor: "center", y: -0.02, yanchor: "top", thickness: 12, len: 0.9,
                  title: { text: label, side: "top" }, tickformat: format, nticks: phone ? 4 : 6 };
      var heat = { type: "heatmap", z: z, x: steps(nCols), y: steps(nRows), zmin: 0, zmax: top || 1, xgap: 4, ygap: 4,
                   colorscale: [[0, "#dbe7f7"], [0.5, "#5b8fd6"], [1, "#15306b"]], showscale: hasValue,
                   colorbar: bar, hoverinfo: "skip" };
      var names = { type: "scatter", mode: "text", showlegend: false, hoverinfo: "text",
                    x: tiles.map(function (t) { return t.col; }), y: tiles.map(function (t) { return t.row; }),
                    text: tiles.map(function (t) { return "<b>" + t.code + "</b><br>" + t.text[measure]; }),
                    textfont: { size: phone ? 11 : 13, color: tiles.map(function (t) {
                      var v = num(t.values[measure]);
                      return v !== null && top > 0 && v / top > 0.5 ? "#ffffff" : "#1a202c";
                    }) },
                    hovertext: tiles.map(function (t) {
                      var v = num(t.values[measure]);
                      var shown = v === null ? (t.reason || (t.text[measure] === "–" ? map.no_value : map.withheld)) : t.text[measure];
                      return "<b>" + t.name + "</b><br>" + label + ": " + shown;
                    }) };
      var shapes = tiles.map(function (t) {
        return { type: "rect", layer: "below", x0: t.col - 0.46, x1: t.col + 0.46, y0: t.row - 0.46, y1: t.row + 0.46,
                 fillcolor: "#e2e6ec", line: { width: 0 } };
      });
      window.Plotly.react(mapBox, [heat, names], {
        margin: { l: 2, r: 2, t: 2, b: 64 }, showlegend: false,
        xaxis: { visible: false, range: [-0.5, nCols - 0.5], fixedrange: true },
        yaxis: { visible: false, range: [nRows - 0.5, -0.5], scaleanchor: "x", fixedrange: true },
        shapes: shapes, hovermode: "closest", hoverdistance: 40,
        paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)"
      }, config);
    };
    var buttons = Array.prototype.slice.call(document.querySelectorAll("[data-measure]"));
    buttons.forEach(function (button) {
      button.addEventListener("click", function () {
        buttons.forEach(function (other) { other.setAttribute("aria-pressed", other === button ? "true" : "false"); });
        drawMap(button.dataset.measure);
      });
    });
    drawMap(buttons.length ? buttons[0].dataset.measure : "capacity_gpus");
  }

  // Regions: horizontal bars per state (withheld states have no bar).
  // A phone lists only the states with a bar; a wide screen all sixteen.
  var shown = rows.filter(function (row) {
    return phone ? Number(row.capacity_gpus || 0) + Number(row.volume_gpuh || 0) > 0
                 : row.capacity_gpus !== null || row.volume_gpuh !== null;
  });
  var names = shown.map(function (row) { return row.state_name; });
  draw("regions-bars", [
    { type: "bar", orientation: "h", name: text.capacity, y: names, x: shown.map(function (r) { return num(r.capacity_gpus); }),
      marker: { color: colors.intraday } },
    { type: "bar", orientation: "h", name: text.volume, y: names, x: shown.map(function (r) { return num(r.volume_gpuh); }),
      marker: { color: colors.dayahead }, xaxis: "x2" }
  ], { barmode: "group",
       xaxis: wholeAxis(shown.map(function (r) { return num(r.capacity_gpus); }),
                        { type: "linear", domain: [0, 0.47], nticks: phone ? 3 : 6 }),
       xaxis2: wholeAxis(shown.map(function (r) { return num(r.volume_gpuh); }),
                         { type: "linear", domain: [0.53, 1], nticks: phone ? 3 : 6 }),
       yaxis: { automargin: true, autorange: "reversed" }, margin: { l: 8, r: 12, t: 8, b: 40 } });
}());
