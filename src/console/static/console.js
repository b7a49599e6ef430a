// Steward console: the little that needs a script. Every page works
// without it; with it, a running deployment's page follows its progress
// and the deploy button asks before it deploys. Text goes into the page
// through textContent only, never as HTML.
"use strict";

(function () {
  // Never more than one request a second per page, whatever the server
  // answers; a failed request waits longer.
  var MIN_INTERVAL_MS = 1000;
  var RETRY_MS = 5000;
  var WAIT_SECONDS = 25;

  function byId(id) {
    return document.getElementById(id);
  }

  function setText(id, text) {
    var el = byId(id);
    if (el) {
      el.textContent = text;
    }
  }

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function showTroubles(progress) {
    var table = byId("troubles");
    if (!table) {
      return;
    }
    var body = table.tBodies[0];
    while (body.firstChild) {
      body.removeChild(body.firstChild);
    }
    progress.troubles.forEach(function (t) {
      var row = document.createElement("tr");
      var td = document.createElement("td");
      var a = document.createElement("a");
      a.href = "host?name=" + encodeURIComponent(t.host);
      a.textContent = t.host;
      td.appendChild(a);
      row.appendChild(td);
      cell(row, t.result);
      cell(row, t.stage);
      cell(row, t.error);
      body.appendChild(row);
    });
    if (progress.troubles.length === 0) {
      var empty = document.createElement("tr");
      var td2 = cell(empty, "None.");
      td2.colSpan = 4;
      td2.className = "empty";
      body.appendChild(empty);
    }
    setText("more-troubles", progress.more_troubles > 0 ? "and " + progress.more_troubles + " more" : "");
  }

  function showStages(progress) {
    var table = document.querySelector("#stages table");
    if (!table || progress.stages.length === 0) {
      return;
    }
    setText("stage-line", progress.stage_line);
    var body = table.tBodies[0];
    while (body.firstChild) {
      body.removeChild(body.firstChild);
    }
    progress.stages.forEach(function (s) {
      var row = document.createElement("tr");
      [s.stage, s.hosts, s.state, s.deployed, s.trouble, s.pending].forEach(function (v) {
        cell(row, String(v));
      });
      body.appendChild(row);
    });
  }

  function show(section, progress) {
    var status = byId("status");
    if (status) {
      status.textContent = progress.status;
      status.className = "status status-" + progress.status;
    }
    Object.keys(progress.counts).forEach(function (result) {
      var n = progress.counts[result];
      setText("count-" + result, String(n));
      var bar = byId("bar-" + result);
      if (bar) {
        bar.max = Math.max(progress.total, 1);
        bar.value = n;
        bar.textContent = String(n);
      }
    });
    setText("count-total", String(progress.total));
    if (progress.finished_at) {
      setText("finished", ", finished " + progress.finished_at);
    }
    showStages(progress);
    showTroubles(progress);
    section.dataset.version = progress.version;
    section.dataset.final = String(progress.final);
  }

  function follow(section) {
    var live = byId("live");
    var last = 0;
    function poll() {
      var since = section.dataset.version;
      var url = "deployment/progress?id=" + encodeURIComponent(section.dataset.id) +
        "&since=" + encodeURIComponent(since) + "&wait=" + WAIT_SECONDS;
      last = Date.now();
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.json();
        })
        .then(function (progress) {
          show(section, progress);
          if (progress.final) {
            live.textContent = "Finished.";
            return;
          }
          live.textContent = "Following live…";
          setTimeout(poll, Math.max(0, last + MIN_INTERVAL_MS - Date.now()));
        })
        .catch(function (e) {
          live.textContent = "Lost contact (" + e.message + "); retrying…";
          setTimeout(poll, RETRY_MS);
        });
    }
    live.hidden = false;
    live.textContent = "Following live…";
    poll();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var section = byId("deployment");
    if (section && section.dataset.final === "false") {
      follow(section);
    }
    var form = byId("deploy-form");
    if (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm("Deploy every changed allowlist to the fleet now?")) {
          event.preventDefault();
        }
      });
    }
  });
})();
