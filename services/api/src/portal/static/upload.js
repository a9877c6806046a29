// nmp portal: keeps an import's progress page up to date without a reload. It asks nmp how far
// the import has come every half second and, once it is done, shows the result.
(function () {
  "use strict";
  var box = document.querySelector("[data-progress]");
  if (!box) { return; }
  var url = box.getAttribute("data-progress");
  var bar = document.getElementById("import-progress");
  var said = document.getElementById("import-status");
  function ask() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (answer) {
        // An upload nmp no longer holds: the page says so.
        if (answer.status === 404) { window.location.reload(); return null; }
        if (!answer.ok) { throw new Error("status " + answer.status); }
        return answer.json();
      })
      .then(function (progress) {
        if (progress === null) { return; }
        if (progress.stage !== "importing") { window.location.reload(); return; }
        bar.max = Math.max(progress.total, 1);
        bar.value = progress.done;
        bar.textContent = progress.done + " of " + progress.total;
        said.textContent = progress.done + " of " + progress.total + " rows done";
        window.setTimeout(ask, 500);
      })
      .catch(function () { window.setTimeout(ask, 2000); });
  }
  window.setTimeout(ask, 300);
})();
