// Herald console: live updates from the events stream (the only script; no inline script).
// The pages work without it; it adds a live feed and keeps job states current.
"use strict";

(function () {
  var feed = document.querySelector("[data-live-feed]");
  var status = document.querySelector("[data-live-status]");
  if (!feed || !window.EventSource) {
    return;
  }
  var FINISHED = ["succeeded", "failed", "missed", "cancelled", "unconfirmed"];
  var page = document.body.getAttribute("data-live-page");
  var jobId = document.body.getAttribute("data-job-id");
  var base = "/console";

  function editing() {
    var el = document.activeElement;
    if (el && (el.tagName === "TEXTAREA" || el.tagName === "SELECT" ||
               (el.tagName === "INPUT" && el.type !== "submit"))) {
      return true;
    }
    return Array.prototype.some.call(document.querySelectorAll("textarea"), function (area) {
      return area.value !== area.defaultValue;
    });
  }

  function show(change) {
    var item = document.createElement("li");
    var link = document.createElement("a");
    link.href = base + "/jobs/" + encodeURIComponent(change.job_id);
    link.textContent = change.job_id.slice(-8);
    var time = (change.at || "").slice(11, 19);
    item.appendChild(document.createTextNode(time + " "));
    item.appendChild(link);
    item.appendChild(document.createTextNode(" → " + change.state +
      (change.reason ? " (" + change.reason + ")" : "")));
    feed.insertBefore(item, feed.firstChild);
    while (feed.children.length > 15) {
      feed.removeChild(feed.lastChild);
    }
  }

  function update(change) {
    var rows = document.querySelectorAll('[data-job-id="' + CSS.escape(change.job_id) + '"]');
    rows.forEach(function (row) {
      var cell = row.querySelector("[data-job-state]");
      if (cell) {
        cell.textContent = change.state;
        cell.className = "state " + change.state;
      }
    });
    if (page === "job" && change.job_id === jobId) {
      var note = document.querySelector("[data-live-note]");
      if (note) {
        note.hidden = false;
      }
      if (FINISHED.indexOf(change.state) >= 0 && !editing()) {
        window.location.reload();
      }
    }
  }

  // Once subscribed, look at the job once: it may have changed since the page was rendered.
  function catchUp() {
    if (page !== "job" || !window.fetch) {
      return;
    }
    var shown = document.querySelector("h1 [data-job-state]");
    fetch(base + "/jobs/" + encodeURIComponent(jobId) + "/state", {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (now) {
        if (now && shown && now.state !== shown.textContent) {
          update({job_id: jobId, state: now.state});
        }
      })
      .catch(function () {});
  }

  var source = new EventSource(base + "/events");
  source.addEventListener("open", function () {
    status.textContent = "Connected: job changes appear here as they happen.";
    catchUp();
  });
  source.addEventListener("error", function () {
    status.textContent = "Reconnecting to the events stream…";
  });
  source.addEventListener("job", function (event) {
    var change;
    try {
      change = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    show(change);
    update(change);
  });
})();
