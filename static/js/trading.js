/* The live parts of the trading screen (market/templates/market/trading/instrument.html).
 *
 * The three WebSockets are opened by htmx's ws extension (ws-connect, with its
 * reconnect and back-off); their messages are JSON of the API contract, so this
 * file takes them in htmx:wsBeforeMessage and stops htmx from swapping them:
 *
 *  - book: a snapshot, then updates of absolute level quantities, each with the
 *    previous sequence + 1. On a gap the book is stale: ask for a new snapshot.
 *  - trades: prepended to the tape and added to the candle chart; on (re)connect
 *    the tape partial is fetched again, so nothing traded while away is missing.
 *  - private: the member's own order and fill events. They carry no markup;
 *    the own-orders and fills partials are fetched again (hx-trigger="rb:refresh"),
 *    and the order status box of the order just placed is updated in place.
 *    (static/js/notify.js draws the fill notifications from the same stream.)
 *
 * Charts (plotly): candles per interval with the volume below, drawn from the
 * trades (#trade-data plus the live ones); the depth chart from the book.
 * A click on a book level fills in the order form for the other side.
 *
 * Numbers and times are formatted for the page's language, times in Europe/Berlin.
 */
(function () {
  "use strict";

  var root = document.querySelector("[data-trading]");
  if (!root) return;

  var lang = document.documentElement.lang || "de";
  var text = JSON.parse(document.getElementById("trading-i18n").textContent);
  var symbol = root.dataset.symbol;
  var displayDepth = parseInt(root.dataset.depth, 10) || 10;
  var priceFormat = new Intl.NumberFormat(lang, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  var inputPriceFormat = new Intl.NumberFormat(lang, { minimumFractionDigits: 2, useGrouping: false });
  var qtyFormat = new Intl.NumberFormat(lang);
  var timeFormat = new Intl.DateTimeFormat(lang, {
    timeZone: "Europe/Berlin", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"
  });
  // "2026-11-29 14:05:01" in Berlin wall time: plotly ignores offsets in dates.
  var plotTimeFormat = new Intl.DateTimeFormat("sv-SE", {
    timeZone: "Europe/Berlin", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"
  });

  function el(tag, className, content) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (content !== undefined) node.textContent = content;
    return node;
  }

  function setStat(name, value) {
    document.querySelectorAll('[data-stat="' + name + '"]').forEach(function (node) {
      node.textContent = value;
    });
  }

  function setLive(card, live) {
    var badge = card.querySelector("[data-live]");
    if (!badge) return;
    badge.classList.toggle("is-live", live);
    badge.textContent = live ? text.live : text.offline;
  }

  /* ---------- order book ---------- */

  var bookCard = document.getElementById("book");
  var book = { sequence: null, depth: 0, bids: new Map(), asks: new Map(), fullBids: false, fullAsks: false };
  var flash = new Set();

  function loadSnapshot(message) {
    book.sequence = message.sequence;
    book.depth = message.depth || 0;
    book.bids = new Map(message.bids);
    book.asks = new Map(message.asks);
    book.fullBids = book.depth > 0 && message.bids.length >= book.depth;
    book.fullAsks = book.depth > 0 && message.asks.length >= book.depth;
  }

  function applyLevels(side, levels) {
    levels.forEach(function (level) {
      if (level[1] === 0) side.delete(level[0]);
      else side.set(level[0], level[1]);
      flash.add(level[0]);
    });
  }

  function sortedLevels(side, descending) {
    var levels = Array.from(side.entries());
    levels.sort(function (a, b) { return descending ? b[0] - a[0] : a[0] - b[0]; });
    return levels.slice(0, displayDepth);
  }

  function ladderRows(tbody, levels, kind, maxQty) {
    var rows = [];
    var total = 0;
    levels.forEach(function (level) {
      total += level[1];
      var row = el("tr", "level level-" + kind + (flash.has(level[0]) ? " flash" : ""));
      row.dataset.price = level[0];
      row.dataset.total = total;
      row.tabIndex = 0;
      row.style.setProperty("--share", Math.round((level[1] / maxQty) * 100) + "%");
      row.append(el("td", "num price", priceFormat.format(parseFloat(level[0]))),
                 el("td", "num", qtyFormat.format(level[1])),
                 el("td", "num muted", qtyFormat.format(total)));
      rows.push(row);
    });
    while (rows.length < displayDepth) {
      var empty = el("tr", "level level-empty");
      empty.append(el("td", "num", "\u00a0"), el("td"), el("td"));
      rows.push(empty);
    }
    // Asks read upwards from the spread: the best ask sits next to it.
    if (kind === "ask") rows.reverse();
    tbody.replaceChildren.apply(tbody, rows);
  }

  function renderBook() {
    var bids = sortedLevels(book.bids, true);
    var asks = sortedLevels(book.asks, false);
    var maxQty = Math.max.apply(null, [1].concat(bids.map(function (l) { return l[1]; }),
                                                asks.map(function (l) { return l[1]; })));
    ladderRows(bookCard.querySelector('[data-side="asks"]'), asks, "ask", maxQty);
    ladderRows(bookCard.querySelector('[data-side="bids"]'), bids, "bid", maxQty);
    flash.clear();
    var bestBid = bids.length ? bids[0][0] : null;
    var bestAsk = asks.length ? asks[0][0] : null;
    setStat("bid", bestBid === null ? "–" : priceFormat.format(bestBid));
    setStat("ask", bestAsk === null ? "–" : priceFormat.format(bestAsk));
    setStat("spread", bestBid === null || bestAsk === null ? "–" : priceFormat.format(bestAsk - bestBid));
    bookCard.dataset.sequence = book.sequence === null ? "" : String(book.sequence);
    scheduleDepth();
  }

  function requestSnapshot(socket) {
    book.sequence = null;  // ignore updates until the snapshot is here
    socket.send(JSON.stringify({ type: "snapshot" }));
  }

  if (bookCard) {
    bookCard.addEventListener("htmx:wsOpen", function () { book.sequence = null; setLive(bookCard, true); });
    bookCard.addEventListener("htmx:wsClose", function () { setLive(bookCard, false); });
    bookCard.addEventListener("htmx:wsBeforeMessage", function (event) {
      event.preventDefault();
      var message = JSON.parse(event.detail.message);
      if (message.type === "snapshot") {
        loadSnapshot(message);
      } else if (message.type === "update") {
        if (book.sequence === null || message.sequence <= book.sequence) return;
        if (message.sequence !== book.sequence + 1) {
          requestSnapshot(event.detail.socketWrapper);
          return;
        }
        book.sequence = message.sequence;
        applyLevels(book.bids, message.bids);
        applyLevels(book.asks, message.asks);
        // Levels beyond the snapshot's depth are unknown here: once a side
        // that was cut off runs short of the ladder, fetch the book again.
        if ((book.fullBids && book.bids.size < displayDepth) || (book.fullAsks && book.asks.size < displayDepth)) {
          requestSnapshot(event.detail.socketWrapper);
          return;
        }
      } else {
        return;
      }
      renderBook();
    });
    // A click on a level (or Enter on it) fills in the order form for the
    // other side: an offer is bought, a bid is sold, at the level's price and
    // with the GPUs up to it (the quantity that would take the level whole).
    bookCard.addEventListener("click", function (event) {
      var row = event.target.closest("tr[data-price]");
      if (row) fillOrderForm(row);
    });
    bookCard.addEventListener("keydown", function (event) {
      var row = event.target.closest("tr[data-price]");
      if (row && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        fillOrderForm(row);
      }
    });
  }

  function fillOrderForm(row) {
    var form = document.getElementById("order-form");
    if (!form) return;
    var side = row.classList.contains("level-ask") ? "buy" : "sell";
    var radio = form.querySelector("[name=side][value=" + side + "]");
    if (radio) radio.checked = true;
    var type = form.querySelector("[name=type]");
    if (type) type.value = "limit";
    syncOrderForm();
    var price = form.querySelector("input[name=price]");
    var quantity = form.querySelector("input[name=quantity]");
    if (price) price.value = inputPriceFormat.format(parseFloat(row.dataset.price));
    if (quantity && row.dataset.total) quantity.value = row.dataset.total;
    form.dispatchEvent(new Event("change", { bubbles: true }));  // the cost preview follows
    form.classList.remove("filled-from-book");
    void form.offsetWidth;  // restart the highlight
    form.classList.add("filled-from-book");
    if (quantity) quantity.focus();
  }

  /* ---------- depth chart ---------- */

  var depthChart = document.getElementById("depth-chart");
  var depthPending = false;

  function scheduleDepth() {
    if (!depthChart || depthPending) return;
    depthPending = true;
    window.requestAnimationFrame(function () { depthPending = false; drawDepth(); });
  }

  function cumulative(levels) {
    var total = 0;
    return levels.map(function (level) { total += level[1]; return [parseFloat(level[0]), total]; });
  }

  function drawDepth() {
    if (!depthChart || !window.Plotly) return;
    var bids = cumulative(Array.from(book.bids.entries()).sort(function (a, b) { return b[0] - a[0]; }));
    var asks = cumulative(Array.from(book.asks.entries()).sort(function (a, b) { return a[0] - b[0]; }));
    depthChart.classList.toggle("is-empty", !bids.length && !asks.length);
    if (!bids.length && !asks.length) {
      window.Plotly.purge(depthChart);
      return;
    }
    // Bids: from the lowest price up to the best, each step holding the GPUs
    // bid at that price or higher; offers: from the best up.
    var prices = bids.concat(asks).map(function (p) { return p[0]; });
    var low = Math.min.apply(null, prices);
    var high = Math.max.apply(null, prices);
    // Room on both sides, so that the last step of each side shows as a step.
    var pad = Math.max((high - low) * 0.12, 0.05);
    var bidPoints = bids.slice().reverse();
    if (bids.length) {
      bidPoints.unshift([low - pad, bids[bids.length - 1][1]]);
      bidPoints.push([bids[0][0], 0]);
    }
    var askPoints = asks.length ? [[asks[0][0], 0]].concat(asks) : [];
    if (asks.length) askPoints.push([high + pad, asks[asks.length - 1][1]]);
    function trace(points, name, color, fill, shape) {
      return {
        x: points.map(function (p) { return p[0]; }), y: points.map(function (p) { return p[1]; }),
        name: name, type: "scatter", mode: "lines", fill: "tozeroy", fillcolor: fill,
        line: { shape: shape, color: color, width: 2 },
        hovertemplate: "%{x:.2f} EUR/GPUh<br>%{y} " + text.gpus + "<extra>" + name + "</extra>"
      };
    }
    var layout = baseLayout(depthChart, 200);
    layout.xaxis = { tickformat: ".2f", gridcolor: "#eef1f5", zeroline: false, range: [low - pad, high + pad] };
    layout.yaxis = { gridcolor: "#eef1f5", zeroline: false, rangemode: "tozero", automargin: true };
    layout.showlegend = true;
    layout.legend = { orientation: "h", x: 0, y: 1.12, font: { size: 11 } };
    window.Plotly.react(depthChart, [
      trace(bidPoints, text.bids, "#0f7a3f", "rgba(15, 122, 63, 0.15)", "vh"),
      trace(askPoints, text.asks, "#c0352b", "rgba(192, 53, 43, 0.13)", "hv")
    ], layout, { displayModeBar: false, responsive: true });
  }

  /* ---------- trades: tape and chart ---------- */

  var tapeCard = document.getElementById("tape");
  var chart = document.getElementById("price-chart");
  var seenTrades = new Set();
    var volumeToday = 0;

  function tradeData() {
    var node = document.getElementById("trade-data");
    return node ? JSON.parse(node.textContent) : [];
  }

  function plotTime(ms) { return plotTimeFormat.format(new Date(ms)); }

  function baseLayout(node, height) {
    return {
      margin: { l: 48, r: 12, t: 8, b: 32 }, height: node.clientHeight || height,
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, sans-serif", size: 12, color: "#566275" },
      separators: lang === "de" ? ",." : ".,",
      showlegend: false
    };
  }

  var INTERVALS = [1, 5, 15, 60];  // minutes; the buttons above the chart offer the same
  var chosenInterval = null;  // null: chosen from the span of the trades
  var intervalSwitch = document.querySelector("[data-interval-switch]");

  function autoInterval(span) {
    // The smallest interval that keeps the chart at about 60 candles or fewer.
    for (var i = 0; i < INTERVALS.length; i++) {
      if (span / (INTERVALS[i] * 60000) <= 60) return INTERVALS[i];
    }
    return INTERVALS[INTERVALS.length - 1];
  }

  function candles(ordered, size) {
    // Buckets of `size` ms from the epoch: every interval here divides an hour,
    // and Berlin's offsets are whole hours, so candles start on the local clock.
    var out = [];
    ordered.forEach(function (t) {
      var at = Math.floor(new Date(t.executed_at).getTime() / size) * size;
      var price = parseFloat(t.price);
      var last = out[out.length - 1];
      if (!last || last.at !== at) {
        out.push({ at: at, open: price, high: price, low: price, close: price, volume: t.quantity });
      } else {
        last.high = Math.max(last.high, price);
        last.low = Math.min(last.low, price);
        last.close = price;
        last.volume += t.quantity;
      }
    });
    return out;
  }

  function markInterval(minutes) {
    if (!intervalSwitch) return;
    intervalSwitch.querySelectorAll("[data-interval]").forEach(function (button) {
      button.setAttribute("aria-pressed", String(parseInt(button.dataset.interval, 10) === minutes));
    });
  }

  function drawChart(trades) {
    if (!chart || !window.Plotly) return;
    var ordered = trades.slice().reverse();  // oldest first
    chart.classList.toggle("is-empty", ordered.length === 0);
    if (!ordered.length) {
      window.Plotly.purge(chart);
      markInterval(chosenInterval);
      return;
    }
    var first = new Date(ordered[0].executed_at).getTime();
    var last = new Date(ordered[ordered.length - 1].executed_at).getTime();
    var minutes = chosenInterval || autoInterval(last - first);
    markInterval(minutes);
    var size = minutes * 60000;
    var bars = candles(ordered, size);
    var x = bars.map(function (c) { return plotTime(c.at + size / 2); });
    var up = "#0f7a3f";
    var down = "#c0352b";
    var words = bars.map(function (c) {
      return plotTime(c.at).slice(11, 16) + "–" + plotTime(c.at + size).slice(11, 16) +
        "<br>" + text.open + " " + priceFormat.format(c.open) + " · " + text.high + " " + priceFormat.format(c.high) +
        "<br>" + text.low + " " + priceFormat.format(c.low) + " · " + text.close + " " + priceFormat.format(c.close) +
        "<br>" + text.volume + " " + qtyFormat.format(c.volume) + " " + text.gpus;
    });
    var price = {
      type: "candlestick", x: x, open: bars.map(function (c) { return c.open; }),
      high: bars.map(function (c) { return c.high; }), low: bars.map(function (c) { return c.low; }),
      close: bars.map(function (c) { return c.close; }), yaxis: "y2", text: words, hoverinfo: "text",
      increasing: { line: { color: up, width: 1.5 }, fillcolor: up },
      decreasing: { line: { color: down, width: 1.5 }, fillcolor: down },
      whiskerwidth: 0.4
    };
    // A candle of one price (one trade, or trades at one price) has no body:
    // a tick at its price keeps it visible.
    var flat = bars.filter(function (c) { return c.high === c.low; });
    var ticks = {
      type: "scatter", mode: "markers", yaxis: "y2", hoverinfo: "skip",
      x: flat.map(function (c) { return plotTime(c.at + size / 2); }), y: flat.map(function (c) { return c.close; }),
      marker: { symbol: "line-ew-open", size: 14, line: { width: 3, color: "#152030" } }
    };
    var lows = bars.map(function (c) { return c.low; });
    var highs = bars.map(function (c) { return c.high; });
    var bottom = Math.min.apply(null, lows);
    var top = Math.max.apply(null, highs);
    var margin = Math.max((top - bottom) * 0.15, 0.05);
    var volume = {
      type: "bar", x: x, y: bars.map(function (c) { return c.volume; }), yaxis: "y", width: size * 0.7,
      marker: { color: bars.map(function (c) { return c.close >= c.open ? "rgba(15,122,63,0.45)" : "rgba(192,53,43,0.45)"; }) },
      text: words, hoverinfo: "text", textposition: "none"
    };
    // At least ten intervals on the axis, so that a few candles do not
    // spread over the whole width.
    var from = Math.min(bars[0].at, bars[bars.length - 1].at - 9 * size);
    var to = bars[bars.length - 1].at + size;
    var layout = baseLayout(chart, 280);
    layout.xaxis = { type: "date", range: [plotTime(from - size * 0.2), plotTime(to + size * 0.2)], tickformat: "%H:%M",
                     gridcolor: "#eef1f5", rangeslider: { visible: false } };
    layout.yaxis2 = { domain: [0.3, 1], tickformat: ".2f", gridcolor: "#eef1f5", zeroline: false, automargin: true,
                      range: [bottom - margin, top + margin] };
    layout.yaxis = { domain: [0, 0.22], gridcolor: "#eef1f5", zeroline: false, automargin: true, rangemode: "tozero",
                     nticks: 3 };
    layout.bargap = 0;
    window.Plotly.react(chart, [volume, price, ticks], layout, { displayModeBar: false, responsive: true });
  }

  if (intervalSwitch) {
    intervalSwitch.addEventListener("click", function (event) {
      var button = event.target.closest("[data-interval]");
      if (!button) return;
      chosenInterval = parseInt(button.dataset.interval, 10);
      drawChart(tradeData());
    });
  }

  function tradeRow(trade) {
    var row = el("tr", "trade trade-" + trade.aggressor + " flash");
    row.dataset.tradeId = trade.id;
    row.append(el("td", "num", timeFormat.format(new Date(trade.executed_at))),
               el("td", "num price", priceFormat.format(parseFloat(trade.price))),
               el("td", "num", qtyFormat.format(trade.quantity)),
               el("td", "side", trade.aggressor === "buy" ? text.buy : text.sell));
    return row;
  }

  function resetTrades() {
    var trades = tradeData();
    seenTrades = new Set(trades.map(function (t) { return t.id; }));
    var tape = document.getElementById("trades");
    volumeToday = tape ? parseInt(tape.dataset.volumeToday || "0", 10) : 0;
    setStat("volume", qtyFormat.format(volumeToday));
    drawChart(trades);
  }

  function addTrade(trade) {
    if (seenTrades.has(trade.id)) return;
    seenTrades.add(trade.id);
    var body = document.querySelector("#trades [data-tape]");
    if (body) {
      var placeholder = body.querySelector(".tape-empty");
      if (placeholder) placeholder.remove();
      body.prepend(tradeRow(trade));
      while (body.rows.length > 50) body.deleteRow(-1);
    }
    var node = document.getElementById("trade-data");
    if (node) {
      var trades = tradeData();
      trades.unshift(trade);
      node.textContent = JSON.stringify(trades.slice(0, 1000));
      drawChart(trades);
    }
    if (plotTime(Date.parse(trade.executed_at)).slice(0, 10) === plotTime(Date.now()).slice(0, 10)) {
      volumeToday += trade.quantity;
      setStat("volume", qtyFormat.format(volumeToday));
    }
    setStat("last", priceFormat.format(parseFloat(trade.price)));
  }

  if (tapeCard) {
    tapeCard.addEventListener("htmx:wsOpen", function () {
      setLive(tapeCard, true);
      htmx.trigger("#trades", "rb:refresh");
    });
    tapeCard.addEventListener("htmx:wsClose", function () { setLive(tapeCard, false); });
    tapeCard.addEventListener("htmx:wsBeforeMessage", function (event) {
      event.preventDefault();
      var message = JSON.parse(event.detail.message);
      if (message.type === "trade") addTrade(message);
    });
  }

  /* ---------- own orders and fills ---------- */

  function refreshOwn() {
    document.querySelectorAll("[data-refresh-own]").forEach(function (node) {
      // Never throw away an amendment the member is typing, nor the answer
      // of a cancel or amend on its way (it brings the list itself).
      if (!node.querySelector(".is-editing, .htmx-request")) htmx.trigger(node, "rb:refresh");
    });
  }

  function eventSymbol(message) {
    var about = message.order || message.fill || message;
    return about.instrument || null;
  }

  var privateStream = document.getElementById("private-stream");
  if (privateStream) {
    privateStream.addEventListener("htmx:wsOpen", refreshOwn);
    privateStream.addEventListener("htmx:wsBeforeMessage", function (event) {
      event.preventDefault();
      var message = JSON.parse(event.detail.message);
      if (message.type === "order" && message.order) updateStatusBox(message.order);
      var about = eventSymbol(message);
      if (about === null || about === symbol) refreshOwn();
    });
  }
  // The status box of the order just placed (in the order form's answer).
  var ENDED = ["filled", "cancelled", "expired", "rejected"];
  function updateStatusBox(order) {
    var box = document.querySelector("[data-order-status]");
    if (!box || box.dataset.orderId !== String(order.id)) return;
    box.dataset.status = order.status;
    var status = box.querySelector('[data-order-field="status"]');
    var filled = box.querySelector('[data-order-field="filled"]');
    if (status) status.textContent = text.status[order.status] || order.status;
    if (filled) filled.textContent = qtyFormat.format(order.filled_quantity);
    var gone = ENDED.indexOf(order.status) >= 0 && order.status !== "filled";
    box.classList.toggle("alert-success", !gone);
    box.classList.toggle("alert-warning", gone);
    box.classList.remove("flash-box");
    void box.offsetWidth;
    box.classList.add("flash-box");
  }

  // The order form's answer says so too (HX-Trigger), before the event arrives.
  document.body.addEventListener("rb:orders-changed", refreshOwn);

  /* ---------- order form ---------- */

  function showField(wrapper, shown) {
    wrapper.hidden = !shown;
    wrapper.querySelectorAll("input, select").forEach(function (input) { input.disabled = !shown; });
  }

  function syncOrderForm() {
    var form = document.getElementById("order-form");
    if (!form) return;
    var type = form.querySelector("[name=type]");
    var tif = form.querySelector("[name=time_in_force]");
    var side = form.querySelector("[name=side]:checked");
    var price = form.querySelector("[data-field=price]");
    var expires = form.querySelector("[data-field=expires_at]");
    // A hidden field is disabled too, so that it is not sent: a market order
    // takes no price, and only a GTD order has an expiry time.
    if (price && type) showField(price, type.value !== "market");
    if (expires && tif) showField(expires, tif.value === "GTD");
    form.dataset.side = side ? side.value : "";
  }

  document.body.addEventListener("change", function (event) {
    if (event.target.closest("#order-form")) syncOrderForm();
  });

  // After any swap: a new tape partial (a new #trade-data node) is the truth up to now.
  var tradeDataNode = null;
  function syncTrades() {
    var node = document.getElementById("trade-data");
    if (node !== tradeDataNode) {
      tradeDataNode = node;
      resetTrades();
    }
  }
  document.body.addEventListener("htmx:afterSettle", function () {
    syncOrderForm();
    syncTrades();
  });

  syncOrderForm();
  syncTrades();
})();
