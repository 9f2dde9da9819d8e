/*
 * Live refresh of server-rendered fragments, no framework.
 * An element with data-refresh-url is re-fetched every data-refresh-seconds
 * (default 15) with the page's query string (so filters apply) and its HTML
 * swapped in place. Paused while the tab is hidden; if the session expired
 * (the fetch was redirected to the login page) the page reloads so the
 * analyst sees the login form instead of a silently stale table.
 */
(function () {
  "use strict";

  function refresher(el) {
    var url = el.getAttribute("data-refresh-url");
    var seconds = parseInt(el.getAttribute("data-refresh-seconds") || "15", 10);
    var busy = false;

    function tick() {
      if (busy || document.hidden) return;
      busy = true;
      fetch(url + window.location.search, {
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" },
        cache: "no-store"
      }).then(function (response) {
        if (response.redirected) { window.location.reload(); return null; }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      }).then(function (html) {
        if (html !== null) {
          el.innerHTML = html;
          el.removeAttribute("data-refresh-error");
          el.setAttribute("data-refreshed", String(Date.now()));
        }
      }).catch(function (err) {
        el.setAttribute("data-refresh-error", String(err));
      }).finally(function () {
        busy = false;
      });
    }

    window.setInterval(tick, Math.max(seconds, 1) * 1000);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) tick(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var nodes = document.querySelectorAll("[data-refresh-url]");
    for (var i = 0; i < nodes.length; i++) refresher(nodes[i]);
  });
})();
