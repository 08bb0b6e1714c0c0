/* Fill notifications and live own-order lists on every trading page
 * (market/templates/market/trading/_private_stream.html, _notify_button.html).
 *
 * The page's private stream (/ws/private/, opened by htmx's ws extension) carries
 * the organisation's order and fill events of every instrument. For each fill
 * this file shows a notification on the page and, when the member has allowed
 * it, one from the browser (Notification API; the tag is the trade, so several
 * open tabs show it once). After any own event, and after a reconnect, the
 * parts marked data-refresh-all (the all-open-orders list) are fetched again.
 *
 * Numbers and times are formatted for the page's language, times in Europe/Berlin.
 */
(function () {
  "use strict";

  var SHOWN_AT_ONCE = 4;
  var TOAST_MS = 15000;

  /* ---------- permission for the browser's notifications ---------- */

  var supported = "Notification" in window;

  function syncButtons() {
    document.querySelectorAll("[data-notify-enable]").forEach(function (button) {
      button.hidden = !supported || window.Notification.permission !== "default";
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-notify-enable]");
    if (!button || !supported) return;
    // Browsers ask only from a click; the answer is kept for the site.
    var asked = window.Notification.requestPermission(syncButtons);
    if (asked && asked.then) asked.then(syncButtons);
  });
  syncButtons();

  /* ---------- the stream ---------- */

  var stream = document.getElementById("private-stream");
  var box = document.getElementById("fill-toasts");
  if (!stream || !box) return;

  var lang = document.documentElement.lang || "de";
  var words = box.dataset;
  var priceFormat = new Intl.NumberFormat(lang, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  var qtyFormat = new Intl.NumberFormat(lang);
  var timeFormat = new Intl.DateTimeFormat(lang, {
    timeZone: "Europe/Berlin", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"
  });
  var seen = new Set();

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (match, name) {
      return Object.prototype.hasOwnProperty.call(values, name) ? values[name] : match;
    });
  }

  function el(tag, className, content) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (content !== undefined) node.textContent = content;
    return node;
  }

  function describe(f) {
    var line = fill(words.textLine, {
      side: f.side === "buy" ? words.textBuy : words.textSell,
      quantity: qtyFormat.format(f.quantity),
      price: priceFormat.format(parseFloat(f.price))
    });
    var detail = f.instrument + " · " + (f.liquidity === "maker" ? words.textMaker : words.textTaker) + " · " +
      timeFormat.format(new Date(f.executed_at));
    return { line: line, detail: detail };
  }

  function showToast(f, text) {
    var toast = el("div", "toast toast-" + f.side);
    toast.setAttribute("role", "status");
    toast.dataset.tradeId = f.trade_id;
    var body = el("div", "toast-body");
    body.append(el("strong", "toast-title", words.textTitle), el("span", "toast-line", text.line));
    var link = el("a", "toast-detail", text.detail);
    link.href = words.instrumentUrl.replace("SYMBOL", encodeURIComponent(f.instrument));
    link.title = words.textOpen;
    body.append(link);
    var close = el("button", "toast-close", "×");
    close.type = "button";
    close.setAttribute("aria-label", words.textClose);
    close.addEventListener("click", function () { toast.remove(); });
    toast.append(body, close);
    box.prepend(toast);
    while (box.children.length > SHOWN_AT_ONCE) box.lastElementChild.remove();
    window.setTimeout(function () { toast.remove(); }, TOAST_MS);
  }

  function showBrowserNotification(f, text) {
    if (!supported || window.Notification.permission !== "granted") return;
    try {
      var note = new window.Notification(words.textTitle + ": " + text.line, {
        body: text.detail, tag: "rb-fill-" + f.trade_id, lang: lang
      });
      note.onclick = function () {
        window.focus();
        window.location.href = words.instrumentUrl.replace("SYMBOL", encodeURIComponent(f.instrument));
      };
    } catch (error) {
      // Some mobile browsers allow notifications only from a service worker: the page's toast remains.
    }
  }

  function onFill(f) {
    if (!f || seen.has(f.trade_id)) return;
    seen.add(f.trade_id);
    var text = describe(f);
    showToast(f, text);
    showBrowserNotification(f, text);
  }

  var refreshPending = null;
  function refreshAll() {
    // One fetch for the burst of events a trade makes (order and fill events of both orders).
    if (refreshPending) return;
    refreshPending = window.setTimeout(function () {
      refreshPending = null;
      document.querySelectorAll("[data-refresh-all]").forEach(function (node) {
        // A request from inside (a cancel) answers the list itself; fetching it
        // now would detach the form before its answer, and the answer be lost.
        if (!node.querySelector(".htmx-request")) htmx.trigger(node, "rb:refresh");
      });
    }, 150);
  }

  stream.addEventListener("htmx:wsOpen", refreshAll);
  stream.addEventListener("htmx:wsBeforeMessage", function (event) {
    event.preventDefault();  // JSON events, not markup for htmx to swap
    var message = JSON.parse(event.detail.message);
    if (message.type === "fill") onFill(message.fill);
    refreshAll();
  });
  document.body.addEventListener("rb:orders-changed", refreshAll);
})();
