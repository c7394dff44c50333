/* kdgrade pages: LMS frame resize, the answer counter, the review queue's keyboard shortcuts. */
(function () {
  "use strict";

  // Ask the LMS to fit its iframe to the page (Canvas and others: lti.frameResize).
  // The content's own height (scrollHeight would never shrink: it is at least the frame's height).
  function contentHeight() { return Math.ceil(document.documentElement.getBoundingClientRect().height); }
  var lastHeight = 0;
  function maybeResize() {
    if (window.parent === window) return;
    var h = contentHeight();
    if (h !== lastHeight) {
      lastHeight = h;
      window.parent.postMessage({ subject: "lti.frameResize", height: h }, "*");
    }
  }
  window.addEventListener("load", maybeResize);
  if (window.ResizeObserver) new ResizeObserver(maybeResize).observe(document.body);

  // The message was for this visit: drop it from the address, so a reload shows the page without it.
  // After accept-and-next the address names the answer shown, not "the one after" (a reload keeps it).
  var shown = document.querySelector("[data-shown-submission]");
  if (window.history.replaceState && /[?&](done|error|n|after)=/.test(window.location.search)) {
    var clean = window.location.search.replace(/([?&])(done|error|n|after|s)=[^&]*/g, "$1")
      .replace(/&&+/g, "&").replace(/\?&/, "?").replace(/[?&]$/, "");
    var sParam = /[?&]s=([0-9]+)/.exec(window.location.search);
    var keep = shown ? shown.getAttribute("data-shown-submission") : (sParam ? sParam[1] : "");
    if (keep) clean += (clean ? "&" : "?") + "s=" + keep;
    window.history.replaceState(null, "", window.location.pathname + clean + window.location.hash);
  }
  // A redirect's outcome is in the status region when the page loads; a live region only announces
  // changes, so it is put back in a moment later for screen readers to say it.
  var status = document.getElementById("status");
  if (status && status.textContent.trim()) {
    var said = status.innerHTML;
    status.innerHTML = "";
    window.setTimeout(function () { status.innerHTML = said; maybeResize(); }, 150);
  }

  // Character counter of the answer box: the server's limit, said before it is reached.
  var box = document.querySelector("textarea[data-limit]");
  if (box) {
    var limit = parseInt(box.getAttribute("data-limit"), 10);
    var counter = document.getElementById("counter");
    var alertEl = document.getElementById("count-alert");
    var fmt = function (n) { return n.toLocaleString("en"); };
    var lastBand = "";
    var update = function () {
      var n = box.value.length;
      var over = n > limit;
      counter.textContent = over ? fmt(n - limit) + " characters over the limit of " + fmt(limit)
                                 : "(" + fmt(n) + " so far)";
      counter.classList.toggle("over", over);
      box.setAttribute("aria-invalid", over ? "true" : "false");
      var band = over ? "over" : (n >= limit * 0.9 ? "near" : "");
      if (band !== lastBand) {
        lastBand = band;
        alertEl.textContent = band === "over" ? "Your answer is longer than " + fmt(limit) + " characters; please shorten it."
                            : band === "near" ? fmt(limit - n) + " characters left." : "";
      }
    };
    box.addEventListener("input", update);
    update();
  }

  // Review queue: 0-9 choose a level, Enter accepts (or saves the chosen level), J/K next/previous.
  var queue = document.getElementById("review");
  if (queue) {
    document.addEventListener("keydown", function (e) {
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      var t = e.target;
      var typing = t && (t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable ||
                         (t.tagName === "INPUT" && !/^(radio|checkbox)$/.test(t.type)));
      if (typing) return;
      var key = e.key;
      if (/^[0-9]$/.test(key)) {
        var radio = queue.querySelector('input[name="value"][value="' + key + '"]');
        if (radio) { radio.checked = true; radio.focus(); e.preventDefault(); }
      } else if (key === "Enter") {
        if (t && (t.tagName === "BUTTON" || t.tagName === "A" || t.tagName === "SUMMARY")) return;
        var chosen = queue.querySelector('input[name="value"]:checked');
        var model = queue.getAttribute("data-model-score");
        e.preventDefault();
        if (chosen && chosen.value !== model) document.getElementById("save-score").click();
        else if (document.getElementById("accept")) document.getElementById("accept").click();
        else if (chosen) document.getElementById("save-score").click();
      } else if (key === "j" || key === "J") {
        var next = document.getElementById("next");
        if (next) { e.preventDefault(); next.click(); }
      } else if (key === "k" || key === "K") {
        var prev = document.getElementById("previous");
        if (prev) { e.preventDefault(); prev.click(); }
      } else if (key === "c" || key === "C") {
        var c = document.getElementById("comment");
        if (c) { e.preventDefault(); c.focus(); }
      }
    });
  }
  document.documentElement.setAttribute("data-ready", "1");  // the handlers above are in place
})();
