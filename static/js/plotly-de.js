/* German month and day names and number separators for every chart: loaded (deferred) right
   after plotly.min.js and before a page's chart script, it registers plotly's "de" locale and
   makes the page language the charts' default. Plotly's own locale file is not in the Python
   package we vendor from, so the format part of it (plotly.js lib/locales/de.js, MIT) is here. */
(function () {
  "use strict";
  if (!window.Plotly) { return; }
  window.Plotly.register({
    moduleType: "locale",
    name: "de",
    dictionary: {},
    format: {
      days: ["Sonntag", "Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag"],
      shortDays: ["So", "Mo", "Di", "Mi", "Do", "Fr", "Sa"],
      months: ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
               "Oktober", "November", "Dezember"],
      shortMonths: ["Jan", "Feb", "Mär", "Apr", "Mai", "Jun", "Jul", "Aug", "Sep", "Okt", "Nov", "Dez"],
      date: "%d.%m.%Y",
      decimal: ",",
      thousands: "."
    }
  });
  window.Plotly.setPlotConfig({ locale: document.documentElement.lang === "en" ? "en" : "de" });
}());
