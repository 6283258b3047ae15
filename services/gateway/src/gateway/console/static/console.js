// Switchboard console: live progress from Server-Sent Events, and htmx settings. No build step.
(function () {
  "use strict";

  function ready() {
    // Errors (4xx, 5xx) carry a page or fragment that says what went wrong: show it.
    htmx.config.responseHandling = [
      { code: "204", swap: false },
      { code: "[23]..", swap: true },
      { code: "[45]..", swap: true, error: true },
    ];
    document.querySelectorAll("[data-live]").forEach(follow);
    // A new file: the column mapping chosen for the previous one no longer applies.
    document.addEventListener("change", function (e) {
      if (e.target.matches && e.target.matches("input[type=file]")) {
        document.querySelectorAll("#preview select").forEach(function (s) { s.remove(); });
      }
    }, true);
  }

  function percent(part, whole) {
    return whole ? Math.min(100, Math.round((100 * (part || 0)) / whole)) : 0;
  }

  // [data-status, text] of a campaign's badge and bar (web.py `_status_of` says the same).
  function badge(job) {
    if (job.status === "completed" && job.status_reason) return ["completed-unreached", "completed, nobody reached"];
    return [job.status, job.status];
  }

  // Update the progress bar of a campaign shown on the page (campaign list).
  function progress(job) {
    var shown = document.querySelectorAll('[data-campaign="' + CSS.escape(job.id) + '"]');
    shown.forEach(function (card) {
      var done = percent(job.total_calls_finished, job.total_calls_scheduled);
      var calling = Math.max(0, percent(job.total_calls_dispatched, job.total_calls_scheduled) - done);
      var state = badge(job);
      var bar = card.querySelector("[data-progress]");
      if (bar) {
        bar.dataset.status = state[0];
        bar.setAttribute("aria-valuenow", String(done));
        bar.querySelector(".done").style.width = done + "%";
        bar.querySelector(".calling").style.width = calling + "%";
      }
      var set = function (sel, text) { var el = card.querySelector(sel); if (el) el.textContent = text; };
      set("[data-percent]", done + " %");
      set("[data-finished]", job.total_calls_finished);
      set("[data-dispatched]", job.total_calls_dispatched);
      set("[data-scheduled]", job.total_calls_scheduled);
      var status = card.querySelector(".card-head .status");
      if (status) { status.textContent = state[1]; status.dataset.status = state[0]; }
    });
    return shown.length;
  }

  // Follow an element's event stream; refresh its `data-refresh` parts at most once a second.
  // A campaign not on the page (a new one) refreshes `data-refresh-unknown` (the list's first page).
  function follow(el) {
    var source = new EventSource(el.dataset.live);
    var targets = (el.dataset.refresh || "").split(",").filter(Boolean);
    var unknown = el.dataset.refreshUnknown;
    var timer = null;
    var last = 0;
    function refresh(extra) {
      if (extra && targets.indexOf(extra) < 0) targets.push(extra);
      if (!targets.length || timer) return;
      var wait = Math.max(0, 1000 - (Date.now() - last));
      timer = setTimeout(function () {
        timer = null;
        last = Date.now();
        var again = false;
        targets.forEach(function (sel) {
          var target = document.querySelector(sel);
          if (!target) return;
          // One refresh at a time; the change that arrived meanwhile gets one more.
          if (target.classList.contains("htmx-request")) again = true;
          else htmx.trigger(target, "refresh");
        });
        if (unknown) targets = [];  // the list refreshes only for campaigns it does not show
        if (again) refresh(unknown);
      }, wait);
    }
    source.addEventListener("campaign", function (e) {
      if (!progress(JSON.parse(e.data)) && unknown) refresh(unknown);
      else refresh();
    });
    source.addEventListener("recipient", function () { refresh(); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
