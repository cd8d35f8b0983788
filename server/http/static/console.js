// jobplane console: keeps the page current from the event stream (server-sent events; the
// browser resumes from the last event id by itself) or, where the user may not watch every
// job, by polling. The page's <main> is fetched again and swapped in; forms stay as they are.
(function () {
  "use strict";
  const body = document.body;
  const main = document.getElementById("main");
  const log = document.getElementById("events");
  if (!main) return;
  let timer = null;

  function refresh() {
    if (timer !== null) return;
    timer = setTimeout(async function () {
      timer = null;
      const typing = document.activeElement;
      if (typing && typing.tagName === "INPUT" && main.contains(typing)) { refresh(); return; }  // later
      try {
        const answer = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
        if (answer.redirected && new URL(answer.url).pathname === "/login") { location.href = answer.url; return; }
        if (!answer.ok) return;
        const fresh = new DOMParser().parseFromString(await answer.text(), "text/html").getElementById("main");
        if (fresh) main.innerHTML = fresh.innerHTML;
      } catch (e) { /* the next event or tick tries again */ }
    }, 300);
  }

  function note(event) {
    if (!log) return;
    const item = document.createElement("li");
    const parts = [event.time || "", event.kind, event.task_name || ("job " + (event.job_id || "")),
                   event.status, event.raw_status, event.message || ""];
    item.textContent = parts.filter(Boolean).join(" · ");
    item.className = "s-" + String(event.status || "").toLowerCase();
    log.prepend(item);
    while (log.children.length > 50) log.removeChild(log.lastChild);
  }

  if (body.dataset.events) {
    const source = new EventSource(body.dataset.events);
    source.addEventListener("jobplane", function (message) {
      try { note(JSON.parse(message.data)); } catch (e) { /* not ours */ }
      refresh();
    });
    source.addEventListener("end", function () { source.close(); setTimeout(function () { location.reload(); }, 2000); });
    source.onopen = function () { body.classList.add("live"); };
    source.onerror = function () { body.classList.remove("live"); };
  } else if (body.dataset.poll) {
    setInterval(refresh, Number(body.dataset.poll) * 1000);
  }

  // How long ago each provider last signalled, ticking between refreshes.
  setInterval(function () {
    document.querySelectorAll(".age[data-since]").forEach(function (age) {
      age.textContent = Math.max(0, Math.round(Date.now() / 1000 - Number(age.dataset.since))) + "s ago";
    });
  }, 1000);

  // A task's output page: the output as it comes (the browser resumes at the last byte it got).
  const output = document.getElementById("output");
  if (body.dataset.output && output) {
    const source = new EventSource(body.dataset.output);
    source.addEventListener("output", function (message) {
      try { output.append(JSON.parse(message.data)); } catch (e) { /* not ours */ }
    });
    source.addEventListener("end", function (message) {
      source.close();
      body.classList.remove("live");
      const end = document.getElementById("output-end");
      try { if (end) end.textContent = JSON.parse(message.data); } catch (e) { /* no reason given */ }
    });
    source.onopen = function () { body.classList.add("live"); };
    source.onerror = function () { body.classList.remove("live"); };
  }
})();
