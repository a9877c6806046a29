// nmp portal: the little script the pages use. Served by nmp itself; the pages work without it.
//
// Live sync states: a page that shows sync states (elements with data-live="account:NAME",
// "number:+E164" or "consent:TENANT") follows /portal/live, a stream of server-sent events,
// and rewrites each state in place when it changes: its status, and the backend's reasons when
// it failed (what a "sync" event carries is described in services/api/src/portal/live.rs).
// The browser reconnects by itself with Last-Event-ID, and nmp sends what was missed.
(function () {
  "use strict";
  if (!window.EventSource) return;
  var cells = document.querySelectorAll("[data-live]");
  if (!cells.length) return;
  var keys = [];
  var seen = {};
  Array.prototype.forEach.call(cells, function (cell) {
    var key = cell.getAttribute("data-live");
    if (key && !seen[key]) {
      seen[key] = true;
      keys.push(key);
    }
  });
  var source = new EventSource("/portal/live?keys=" + encodeURIComponent(keys.slice(0, 500).join(",")));
  // The page says whether it is following (data-live-state on <html>: open or closed).
  source.addEventListener("open", function () {
    document.documentElement.setAttribute("data-live-state", "open");
  });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) {
      document.documentElement.setAttribute("data-live-state", "closed");
    }
  });

  function render(cell, change) {
    while (cell.firstChild) cell.removeChild(cell.firstChild);
    cell.appendChild(document.createTextNode(change.text));
    if (change.status === "failed" && !change.deleting) {
      (change.errors || []).forEach(function (error) {
        cell.appendChild(document.createElement("br"));
        var reason = document.createElement("span");
        reason.className = "error";
        reason.textContent = error.code + ": " + error.message;
        cell.appendChild(reason);
      });
    }
    cell.setAttribute("data-status", change.status);
  }

  source.addEventListener("sync", function (event) {
    var change;
    try {
      change = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    Array.prototype.forEach.call(document.querySelectorAll("[data-live]"), function (cell) {
      if (cell.getAttribute("data-live") === change.key) render(cell, change);
    });
  });

  source.addEventListener("lagged", function () {
    if (document.getElementById("live-lagged")) return;
    var note = document.createElement("p");
    note.id = "live-lagged";
    note.className = "notice";
    note.setAttribute("role", "status");
    note.textContent = "Some changes could not be shown here: reload the page to see them.";
    var main = document.querySelector("main");
    if (main) main.insertBefore(note, main.firstChild);
  });

  // The session ended: nothing more will come until the user signs in again.
  source.addEventListener("expired", function () {
    source.close();
    document.documentElement.setAttribute("data-live-state", "closed");
  });
})();

// A table wider than the screen (on a phone) scrolls inside itself: it then takes the keyboard's
// focus, so that it can be scrolled with the arrow keys too.
(function () {
  "use strict";
  function scrollable() {
    Array.prototype.forEach.call(document.querySelectorAll("table"), function (table) {
      if (table.scrollWidth > table.clientWidth + 1) table.setAttribute("tabindex", "0");
      else if (table.getAttribute("tabindex") === "0") table.removeAttribute("tabindex");
    });
  }
  scrollable();
  window.addEventListener("resize", scrollable);
})();
