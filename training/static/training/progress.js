/* Live progress of a training run: polls the run's JSON status every 1.5 s and updates the page
   (bar, stage, epoch, step, time left, items).  Written for kdgrade; no dependencies. */
(function () {
  "use strict";
  var root = document.getElementById("run");
  if (!root) { return; }
  var url = root.getAttribute("data-status-url");
  var delay = 1500;

  function set(name, text) {
    var el = root.querySelector('[data-field="' + name + '"]');
    if (el && el.textContent !== text) { el.textContent = text; }
    return el;
  }

  function render(s) {
    var pct = Math.max(0, Math.min(100, s.percent || 0));
    var bar = document.getElementById("bar");
    bar.setAttribute("aria-valuenow", String(pct));
    bar.firstElementChild.style.width = pct + "%";
    set("percent_text", pct.toFixed(1).replace(/\.0$/, "") + "%");
    set("status_label", s.status_label);
    set("cancel_note", s.cancel_requested && !s.finished ? "(cancelling…)" : "");
    set("item", s.item || "–");
    set("stage", s.stage || "–");
    set("epoch_text", s.epoch ? s.epoch + " of " + s.epochs : "–");
    set("step_text", s.step ? s.step + " of " + s.total : "–");
    set("eta", s.finished ? "–" : (s.eta || "–"));
    set("message", s.message || "–");
    set("worker", s.worker || "not picked up yet");
    var err = set("error", s.error || "");
    if (err) { err.hidden = !s.error; }
    (s.items || []).forEach(function (it) {
      var row = root.querySelector('tr[data-item="' + it.item + '"]');
      if (!row) { return; }
      row.querySelector('[data-col="status_label"]').textContent = it.status_label;
      row.querySelector('[data-col="version"]').textContent = it.version || "";
      row.querySelector('[data-col="gates"]').textContent =
        it.gates_passed === true ? "all passed" : (it.gates_passed === false ? "some failed" : "");
      row.querySelector('[data-col="error"]').textContent = it.error || "";
    });
    if (s.finished) {
      document.getElementById("report-link").hidden = false;
      var cancel = root.querySelector("form[action$='/cancel/']");
      if (cancel) { cancel.hidden = true; }
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (s) { render(s); if (!s.finished) { window.setTimeout(poll, delay); } })
      .catch(function () { window.setTimeout(poll, delay * 4); });
  }

  if (root.getAttribute("data-finished") !== "1") { window.setTimeout(poll, delay); }
}());
