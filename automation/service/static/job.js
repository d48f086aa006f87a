// Follows a job's log live: the API's Server-Sent Events, with the page's cookie.
// The page already holds every stored line; the stream replays from the start, so lines
// the page has are skipped by their sequence id. On a dropped connection EventSource
// reconnects by itself and sends Last-Event-ID, so the server resumes after the last line.
"use strict";

(function () {
  const log = document.getElementById("log");
  if (!log || log.dataset.live !== "yes" || !window.EventSource) {
    return;
  }
  const status = document.getElementById("log-status");
  const FINAL = ["finished", "cancelled", "superseded"];
  let after = Number(log.dataset.after || "0");
  let source = null;

  function cssWord(text) {
    const word = String(text || "none").trim().toLowerCase().replace(/ /g, "-");
    return /^[a-z-]{1,30}$/.test(word) ? word : "other";
  }

  function append(event) {
    const empty = document.getElementById("log-empty");
    if (empty) {
      empty.remove();
    }
    const nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    const item = document.createElement("li");
    item.className = "kind-" + cssWord(event.kind);
    item.dataset.seq = String(event.seq);
    const time = document.createElement("time");
    time.dateTime = event.at;
    time.textContent = new Date(event.at).toISOString().slice(11, 19);
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = event.kind;
    const line = document.createElement("span");
    line.className = "line";
    line.textContent = event.line;
    item.append(time, kind, line);
    log.append(item);
    if (nearBottom) {
      item.scrollIntoView({block: "end"});
    }
  }

  function show(id, sectionId, text) {
    const element = document.getElementById(id);
    const section = document.getElementById(sectionId);
    if (element && section) {
      element.textContent = text;
      section.hidden = !text;
    }
  }

  function stamp(value) {
    return value ? value.replace("T", " ").slice(0, 19) + " UTC" : "—";
  }

  // The job's facts as they are now (state, duration, error, outcome): read from the API.
  function refresh() {
    return fetch(log.dataset.job, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (job) {
        if (!job) {
          return null;
        }
        const badge = document.getElementById("job-state");
        badge.textContent = job.state;
        badge.className = "badge state-" + cssWord(job.state);
        document.getElementById("fact-state").textContent = job.state;
        document.getElementById("fact-started").textContent = stamp(job.started_at);
        document.getElementById("fact-finished").textContent = stamp(job.finished_at);
        const seconds = job.duration_seconds;
        document.getElementById("fact-duration").textContent = seconds === null ? "—"
          : seconds < 60 ? seconds.toFixed(1) + "s" : Math.floor(seconds / 60) + "m " + Math.floor(seconds % 60) + "s";
        show("job-error", "error-section", job.error || "");
        show("job-outcome", "outcome-section", job.outcome ? JSON.stringify(job.outcome, null, 2) : "");
        show("job-outputs", "outputs-section", job.outputs ? JSON.stringify(job.outputs, null, 2) : "");
        return job;
      })
      .catch(function () { return null; });
  }

  function finish(text) {
    if (source) {
      source.close();
    }
    status.textContent = text;
    refresh();
  }

  function receive(message) {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch (err) {
      return;
    }
    if (typeof event.seq !== "number" || event.seq <= after) {
      return;
    }
    after = event.seq;
    append(event);
    if (event.kind === "started" || event.kind === "lost") {
      refresh();
    }
    if (FINAL.indexOf(event.kind) >= 0) {
      finish("finished");
    }
  }

  source = new EventSource(log.dataset.events);
  // Every event comes unnamed (type "message"); its kind is in its data.
  source.addEventListener("message", receive);
  source.addEventListener("open", function () { status.textContent = "following live"; });
  source.addEventListener("error", function () {
    // A stream that ended without a final line (the job ended while queued): stop if the job is over.
    status.textContent = "reconnecting…";
    refresh().then(function (job) {
      if (job && ["queued", "running"].indexOf(job.state) < 0) {
        finish("finished");
      }
    });
  });
}());
