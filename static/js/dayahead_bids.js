/* The member's day-ahead page (market/templates/market/dayahead/page.html).
 *
 *  - The choice of delivery day, class and zone loads the page for it.
 *  - The countdown to gate closure stays current.
 *  - The curve editor: steps are added and removed (up to the table's
 *    data-max), the curve is drawn with plotly as the member types (GPUs
 *    cumulated against the price: a buy curve falling, a sell curve rising,
 *    the hour's indicative price dashed), and choosing another hour loads the
 *    member's curve for it, if there is one, or keeps the steps typed (so a
 *    curve is copied to another hour by choosing it and sending again).
 *    The reservation is computed by the server (htmx, hx-get on the form's
 *    changes); rows changed here send "rb:steps-changed" to ask for it again.
 *  - The private stream (/ws/private/, opened by _private_stream.html):
 *    notify.js fetches the bid list again after every event; here the
 *    auction's "dayahead_result" for this day also shows a notice.
 *
 * Everything an htmx answer brings (the editor after a send) is set up again
 * through htmx.onLoad. Numbers are read and written in the page's language.
 */
(function () {
  "use strict";

  var root = document.querySelector("[data-dayahead]");
  if (!root) return;

  var lang = document.documentElement.lang || "de";
  var text = JSON.parse(document.getElementById("dayahead-i18n").textContent);
  var indicativeNode = document.getElementById("dayahead-indicative");
  var indicative = indicativeNode ? JSON.parse(indicativeNode.textContent) : {};
  var inputPrice = new Intl.NumberFormat(lang, { minimumFractionDigits: 2, maximumFractionDigits: 2, useGrouping: false });

  function el(tag, className, content) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (content !== undefined) node.textContent = content;
    return node;
  }

  /* "12,50" (German) or "12.50" (English), with or without thousands separators; null if not a number. */
  function readNumber(value) {
    var raw = String(value || "").replace(/\s/g, "");
    if (!raw) return null;
    raw = lang === "de" ? raw.replace(/\./g, "").replace(",", ".") : raw.replace(/,/g, "");
    if (!/^-?\d*\.?\d+$/.test(raw)) return null;
    return parseFloat(raw);
  }

  /* ---------- the choice of auction ---------- */

  document.querySelectorAll("form[data-auto-submit]").forEach(function (form) {
    form.addEventListener("change", function () { form.requestSubmit ? form.requestSubmit() : form.submit(); });
  });

  /* ---------- countdown to gate closure ---------- */

  function plural(words, n) { return n + " " + (n === 1 ? words[0] : words[1]); }

  function countdown(ms) {
    var minutes = Math.max(0, Math.floor(ms / 60000));
    var days = Math.floor(minutes / 1440);
    var hours = Math.floor((minutes % 1440) / 60);
    minutes = minutes % 60;
    var parts = [];
    if (days) parts.push(plural(text.day, days));
    if (hours) parts.push(plural(text.hour, hours));
    if (minutes || !parts.length) parts.push(plural(text.minute, minutes));
    if (parts.length === 1) return parts[0];
    return parts.slice(0, -1).join(", ") + " " + text.and + " " + parts[parts.length - 1];
  }

  function reloadLink() {
    var link = el("a", "", text.reload);
    link.href = window.location.href;
    return link;
  }

  var clock = root.querySelector("[data-countdown]");
  var gate = Date.parse(root.dataset.gateClosure);
  if (clock && !isNaN(gate)) {
    var tick = function () {
      var left = gate - Date.now();
      if (left <= 0) {
        clock.textContent = text.gate_passed + " ";
        clock.append(reloadLink());
        window.clearInterval(timer);
        return;
      }
      clock.textContent = countdown(left);
    };
    var timer = window.setInterval(tick, 20000);
    tick();
  }

  /* ---------- the curve editor ---------- */

  function stepRows(form) { return Array.from(form.querySelectorAll("tr[data-step]")); }

  function readSteps(form) {
    return stepRows(form).map(function (row) {
      return {
        price: readNumber(row.querySelector("[name=step_price]").value),
        quantity: readNumber(row.querySelector("[name=step_quantity]").value)
      };
    }).filter(function (step) { return step.price !== null && step.quantity !== null && step.quantity > 0; });
  }

  function drawCurve(form) {
    var chart = form.querySelector("#curve-chart");
    if (!chart || !window.Plotly) return;
    var side = form.dataset.side === "sell" ? "sell" : "buy";
    var steps = readSteps(form).sort(function (a, b) { return side === "buy" ? b.price - a.price : a.price - b.price; });
    chart.classList.toggle("is-empty", !steps.length);
    if (!steps.length) {
      window.Plotly.purge(chart);
      return;
    }
    // Each step is a horizontal run at its price, as wide as its GPUs; "hv"
    // goes across to the next point, then up or down to its price.
    var x = [0];
    var y = [steps[0].price];
    var total = 0;
    steps.forEach(function (step, i) {
      total += step.quantity;
      x.push(total);
      y.push(i + 1 < steps.length ? steps[i + 1].price : step.price);
    });
    var color = side === "buy" ? "#0f7a3f" : "#c0352b";
    var traces = [{
      x: x, y: y, type: "scatter", mode: "lines", name: side === "buy" ? text.buy : text.sell,
      line: { shape: "hv", color: color, width: 2.5 },
      fill: "tozeroy", fillcolor: side === "buy" ? "rgba(15, 122, 63, 0.10)" : "rgba(192, 53, 43, 0.09)",
      hovertemplate: "%{x} " + text.gpus + "<br>%{y:.2f} " + text.price + "<extra></extra>"
    }];
    var hour = (form.querySelector("[name=hour]") || {}).value;
    var shapes = [];
    var prices = y.slice();
    if (hour && indicative[hour] !== undefined) {
      var level = parseFloat(indicative[hour]);
      prices.push(level);
      shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: level, y1: level,
                    line: { color: "#1b56c7", width: 1.5, dash: "dash" } });
      traces.push({ x: [null], y: [null], type: "scatter", mode: "lines", name: text.indicative,
                    line: { color: "#1b56c7", width: 1.5, dash: "dash" }, hoverinfo: "skip" });
    }
    var high = Math.max.apply(null, prices);
    var low = Math.min.apply(null, prices);
    var pad = Math.max((high - low) * 0.15, 0.5);
    window.Plotly.react(chart, traces, {
      margin: { l: 52, r: 12, t: 8, b: 40 }, height: chart.clientHeight || 220,
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, sans-serif", size: 12, color: "#566275" },
      separators: lang === "de" ? ",." : ".,",
      showlegend: traces.length > 1, legend: { orientation: "h", x: 0, y: 1.15, font: { size: 11 } },
      xaxis: { title: { text: text.cumulative, font: { size: 11 } }, rangemode: "tozero", gridcolor: "#eef1f5",
               zeroline: false, range: [0, total * 1.08] },
      yaxis: { title: { text: text.price, font: { size: 11 } }, tickformat: ".2f", gridcolor: "#eef1f5",
               zeroline: false, range: [Math.max(0, low - pad), high + pad] },
      shapes: shapes
    }, { displayModeBar: false, responsive: true, staticPlot: false });
  }

  function renumber(form) {
    var rows = stepRows(form);
    var table = form.querySelector("[data-steps]");
    var most = parseInt(table.dataset.max, 10) || 64;
    rows.forEach(function (row, i) { row.querySelector("[data-step-no]").textContent = String(i + 1); });
    var add = form.querySelector("[data-add-step]");
    if (add) add.disabled = rows.length >= most;
    var count = form.querySelector("[data-steps-count]");
    if (count) count.textContent = rows.length + " / " + most;
  }

  function stepsChanged(form) {
    renumber(form);
    drawCurve(form);
    htmx.trigger(form, "rb:steps-changed");
  }

  function blankRow(form) {
    var row = stepRows(form)[0].cloneNode(true);
    row.classList.remove("has-error");
    row.querySelectorAll("input").forEach(function (input) {
      input.value = "";
      input.removeAttribute("aria-invalid");
    });
    return row;
  }

  function addRow(form, price, quantity) {
    var row = blankRow(form);
    if (price !== undefined) row.querySelector("[name=step_price]").value = price;
    if (quantity !== undefined) row.querySelector("[name=step_quantity]").value = quantity;
    form.querySelector("[data-steps] tbody").append(row);
    return row;
  }

  function removeRow(form, row) {
    var next = row.nextElementSibling;
    if (next && next.hasAttribute("data-step-errors")) next.remove();
    if (stepRows(form).length > 1) {
      row.remove();
    } else {
      row.querySelectorAll("input").forEach(function (input) { input.value = ""; });
    }
  }

  function loadCurve(form, curve) {
    var body = form.querySelector("[data-steps] tbody");
    var template = blankRow(form);
    body.textContent = "";
    curve.steps.forEach(function (step) {
      var row = template.cloneNode(true);
      row.querySelector("[name=step_price]").value = inputPrice.format(parseFloat(step[0]));
      row.querySelector("[name=step_quantity]").value = String(step[1]);
      body.append(row);
    });
    var side = form.querySelector('[name=side][value="' + curve.side + '"]');
    if (side) side.checked = true;
    form.dataset.side = curve.side;
  }

  function onHourChange(form) {
    var node = document.getElementById("dayahead-curves");
    var curves = node ? JSON.parse(node.textContent) : {};
    var hour = form.querySelector("[name=hour]").value;
    var note = form.querySelector("[data-hour-note]");
    form.querySelectorAll("[data-step-errors], [data-steps-error]").forEach(function (node) { node.remove(); });
    if (curves[hour]) {
      loadCurve(form, curves[hour]);
      if (note) note.textContent = text.loaded;
    } else if (note) {
      note.textContent = readSteps(form).length ? text.new_hour : "";
    }
    stepsChanged(form);
  }

  function setUpCurveEditor(form) {
    if (form.dataset.ready) return;
    form.dataset.ready = "1";
    form.addEventListener("click", function (event) {
      var add = event.target.closest("[data-add-step]");
      if (add) {
        var row = addRow(form);
        stepsChanged(form);
        row.querySelector("input").focus();
        return;
      }
      var remove = event.target.closest("[data-remove-step]");
      if (remove) {
        removeRow(form, remove.closest("tr"));
        stepsChanged(form);
      }
    });
    form.addEventListener("input", function (event) {
      if (event.target.name === "step_price" || event.target.name === "step_quantity") drawCurve(form);
    });
    form.addEventListener("change", function (event) {
      if (event.target.name === "side") {
        form.dataset.side = event.target.value;
        drawCurve(form);
      } else if (event.target.name === "hour") {
        onHourChange(form);
      }
    });
    // Enter in the last row adds a row instead of sending the curve half typed.
    form.addEventListener("keydown", function (event) {
      if (event.key !== "Enter" || !event.target.closest("tr[data-step]")) return;
      var rows = stepRows(form);
      if (event.target.closest("tr") === rows[rows.length - 1] && event.target.name === "step_quantity") {
        event.preventDefault();
        form.querySelector("[data-add-step]").click();
      }
    });
    renumber(form);
    drawCurve(form);
  }

  function setUpBlockForm(form) {
    if (form.dataset.ready) return;
    form.dataset.ready = "1";
    form.addEventListener("change", function (event) {
      if (event.target.name === "side") form.dataset.side = event.target.value;
    });
  }

  htmx.onLoad(function (content) {
    var scope = content.querySelectorAll ? content : document;
    if (scope.matches && scope.matches("[data-curve-form]")) setUpCurveEditor(scope);
    scope.querySelectorAll("[data-curve-form]").forEach(setUpCurveEditor);
    if (scope.matches && scope.matches("[data-block-form]")) setUpBlockForm(scope);
    scope.querySelectorAll("[data-block-form]").forEach(setUpBlockForm);
  });

  /* ---------- the private stream: the auction's result ---------- */

  var stream = document.getElementById("private-stream");
  var live = root.querySelector("[data-live]");
  function setLive(on) {
    if (!live) return;
    live.classList.toggle("is-live", on);
    live.textContent = on ? text.live : text.offline;
  }
  if (stream) {
    stream.addEventListener("htmx:wsOpen", function () { setLive(true); });
    stream.addEventListener("htmx:wsClose", function () { setLive(false); });
    stream.addEventListener("htmx:wsBeforeMessage", function (event) {
      var message;
      try { message = JSON.parse(event.detail.message); } catch (error) { return; }
      if (!message || message.type !== "dayahead_result" || message.delivery_date !== root.dataset.deliveryDate) return;
      var box = document.getElementById("dayahead-live-notice");
      if (!box) return;
      var notice = el("div", "alert alert-success");
      notice.setAttribute("role", "status");
      notice.dataset.result = message.gpu_class + "." + message.zone;
      var line = el("p", "", text.result.replace("%(auction)s", message.gpu_class + " · " + message.zone) + " ");
      if (message.gpu_class === root.dataset.gpuClass && message.zone === root.dataset.zone) line.append(reloadLink());
      notice.append(line);
      box.append(notice);
    });
  }
})();
