/* The live parts of the trading screen (market/templates/market/trading/instrument.html).
 *
 * The three WebSockets are opened by htmx's ws extension (ws-connect, with its
 * reconnect and back-off); their messages are JSON of the API contract, so this
 * file takes them in htmx:wsBeforeMessage and stops htmx from swapping them:
 *
 *  - book: a snapshot, then updates of absolute level quantities, each with the
 *    previous sequence + 1. On a gap the book is stale: ask for a new snapshot.
 *  - trades: prepended to the tape and added to the chart; on (re)connect the
 *    tape partial is fetched again, so nothing traded while away is missing.
 *  - private: the member's own order and fill events. They carry no markup;
 *    the own-orders and fills partials are fetched again (hx-trigger="rb:refresh").
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
    // A click on a level copies its price into the order form.
    bookCard.addEventListener("click", function (event) {
      var row = event.target.closest("tr[data-price]");
      var input = document.querySelector("#order-form input[name=price]");
      if (!row || !input) return;
      input.value = inputPriceFormat.format(parseFloat(row.dataset.price));
      input.focus();
    });
  }

  /* ---------- trades: tape and chart ---------- */

  var tapeCard = document.getElementById("tape");
  var chart = document.getElementById("price-chart");
  var seenTrades = new Set();
  var CHART_MIN_SPAN_MS = 15 * 60 * 1000;
  var volumeToday = 0;

  function tradeData() {
    var node = document.getElementById("trade-data");
    return node ? JSON.parse(node.textContent) : [];
  }

  function plotTime(ms) { return plotTimeFormat.format(new Date(ms)); }

  function drawChart(trades) {
    if (!chart || !window.Plotly) return;
    var ordered = trades.slice().reverse();  // oldest first
    chart.classList.toggle("is-empty", ordered.length === 0);
    if (!ordered.length) {
      window.Plotly.purge(chart);
      return;
    }
    var times = ordered.map(function (t) { return new Date(t.executed_at).getTime(); });
    var first = times[0];
    var last = times[times.length - 1];
    // At least a quarter of an hour on the axis, so that a few trades do not
    // spread over the whole width with the same minute under each tick.
    var from = Math.min(first, last - CHART_MIN_SPAN_MS);
    var pad = Math.max((last - from) * 0.03, 30 * 1000);
    var trace = {
      x: times.map(plotTime),
      y: ordered.map(function (t) { return parseFloat(t.price); }),
      customdata: ordered.map(function (t) { return t.quantity; }),
      type: "scatter", mode: "lines+markers", line: { shape: "hv", color: "#1b56c7", width: 2 },
      marker: { size: 6, color: "#1b56c7" },
      hovertemplate: "%{x|%H:%M:%S}<br>%{y:.2f} EUR/GPUh<br>%{customdata} GPUs<extra></extra>"
    };
    var layout = {
      margin: { l: 48, r: 12, t: 8, b: 32 }, height: chart.clientHeight || 240,
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, sans-serif", size: 12, color: "#566275" },
      separators: lang === "de" ? ",." : ".,",
      xaxis: { type: "date", range: [plotTime(from - pad), plotTime(last + pad)], tickformat: "%H:%M",
               gridcolor: "#eef1f5" },
      yaxis: { tickformat: ".2f", gridcolor: "#eef1f5", zeroline: false, automargin: true },
      showlegend: false
    };
    window.Plotly.react(chart, [trace], layout, { displayModeBar: false, responsive: true });
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
      node.textContent = JSON.stringify(trades.slice(0, 500));
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
      // Never throw away an amendment the member is typing.
      if (!node.querySelector(".is-editing")) htmx.trigger(node, "rb:refresh");
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
      var about = eventSymbol(message);
      if (about === null || about === symbol) refreshOwn();
    });
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
