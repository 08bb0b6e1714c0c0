/* The charts of the electricity, capacity-signal and revenue pages (market/templates/market/power/).
   Each draws the rows of its open dataset, put in the page with json_script exactly as
   /api/v1/open-data/<slug>/ serves them; labels come from the chart element's data attributes.
   No inline script (CSP). */
(function () {
  "use strict";
  if (!window.Plotly) { return; }
  var config = { displayModeBar: false, responsive: true };

  function rows(id) {
    var source = document.getElementById(id);
    return source ? JSON.parse(source.textContent) : null;
  }
  function column(data, name) {
    return data.map(function (row) { return row[name] === null ? null : Number(row[name]); });
  }
  // By hour the rows carry hour_berlin ("2026-11-30T14:00:00+01:00"): plotly has no time zones, so the
  // axis shows Berlin wall-clock time (the offset cut off), as the table does.
  function days(data, name) {
    return data.map(function (row) {
      return row.hour_berlin ? row.hour_berlin.slice(0, 19) : row[name || "date"];
    });
  }
  function layout(extra) {
    var base = { margin: { l: 56, r: 56, t: 8, b: 36 }, showlegend: true,
                 legend: { orientation: "h", y: -0.2 }, xaxis: { type: "date" } };
    Object.keys(extra || {}).forEach(function (key) { base[key] = extra[key]; });
    return base;
  }

  var both = rows("compute-and-power-data");
  var box = document.getElementById("compute-power-chart");
  if (both && box) {
    window.Plotly.newPlot(box, [
      { x: days(both), y: column(both, "compute_base"), name: box.dataset.compute, mode: "lines",
        line: { color: "#1f5fbf", width: 2 }, connectgaps: false },
      { x: days(both), y: column(both, "power_price"), name: box.dataset.power, mode: "lines", yaxis: "y2",
        line: { color: "#c2571a", width: 2 }, connectgaps: false }
    ], layout({ yaxis: { title: { text: "EUR/GPUh" } },
                yaxis2: { title: { text: "EUR/MWh" }, overlaying: "y", side: "right" } }), config);
    var small = document.getElementById("correlation-chart");
    if (small) {
      window.Plotly.newPlot(small, [
        { x: days(both), y: column(both, "correlation_30d"), name: small.dataset.correlation, mode: "lines",
          line: { color: "#0f7a3f", width: 2 } }
      ], layout({ yaxis: { range: [-1, 1], zeroline: true } }), config);
    }
  }

  var spread = rows("spark-spread-data");
  box = document.getElementById("spread-chart");
  if (spread && box) {
    window.Plotly.newPlot(box, [
      { x: days(spread), y: column(spread, "spark_spread"), name: box.dataset.spread, mode: "lines",
        line: { color: "#1f5fbf", width: 2 } },
      { x: days(spread), y: column(spread, "electricity_cost"), name: box.dataset.cost, mode: "lines",
        line: { color: "#c2571a", width: 2 } }
    ], layout({ yaxis: { title: { text: "EUR/GPUh" }, rangemode: "tozero" } }), config);
  }

  var signal = rows("capacity-signal-data");
  box = document.getElementById("signal-chart");
  if (signal && box) {
    window.Plotly.newPlot(box, [
      { x: days(signal), y: column(signal, "forward_price"), name: box.dataset.forward, mode: "lines",
        line: { color: "#8a4fbf", width: 2 } },
      { x: days(signal), y: column(signal, "spot_price"), name: box.dataset.spot, mode: "lines",
        line: { color: "#1f5fbf", width: 2 } }
    ], layout({ yaxis: { title: { text: "EUR/GPUh" } } }), config);
  }

  var revenue = rows("exchange-revenue-data");
  box = document.getElementById("revenue-chart");
  if (revenue && box) {
    window.Plotly.newPlot(box, [
      { x: days(revenue, "month"), y: column(revenue, "fee_revenue"), name: box.dataset.revenue, type: "bar",
        marker: { color: "#1f5fbf" } },
      { x: days(revenue, "month"), y: column(revenue, "incentive_fund_balance"), name: box.dataset.incentive,
        mode: "lines+markers", line: { color: "#0f7a3f" } },
      { x: days(revenue, "month"), y: column(revenue, "rnd_fund_balance"), name: box.dataset.rnd,
        mode: "lines+markers", line: { color: "#8a4fbf" } }
    ], layout({ yaxis: { title: { text: "EUR" }, rangemode: "tozero" },
                // One tick per month (with a year or less of months plotly's own choice was weekly).
                xaxis: { type: "date", dtick: revenue.length > 12 ? "M3" : "M1", tickformat: "%b %Y" } }), config);
  }
}());
