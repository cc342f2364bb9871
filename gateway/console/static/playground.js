// Live mapping in the playground: POST the text to the JSON API ~400 ms after the last
// keystroke and show the result. Without JavaScript the Map button posts the form instead.
(function () {
  "use strict";
  const form = document.getElementById("playground");
  if (!form) return;
  const text = document.getElementById("text");
  const profile = document.getElementById("profile");
  const state = document.getElementById("pg-state");
  const out = {
    error: document.getElementById("pg-error"),
    bundle: document.getElementById("pg-bundle"),
    profile: document.getElementById("pg-profile"),
    issues: document.getElementById("pg-issues"),
    unmapped: document.getElementById("pg-unmapped"),
    explain: document.getElementById("pg-explain"),
  };
  let timer = null;
  let latest = 0;

  function showError(message) {
    out.error.textContent = message || "";
    out.error.hidden = !message;
  }

  function show(result) {
    showError(result.error);
    out.bundle.textContent = result.bundle ? JSON.stringify(result.bundle, null, 2) : "";
    out.profile.textContent = (result.profile || "no profile") + ", zone " + result.timezone;
    const items = (result.issues || []).map(function (i) {
      const li = document.createElement("li");
      li.className = i.severity;
      li.textContent = i.severity + " " + i.code + (i.location ? " at " + i.location : "") + ": " + i.text;
      return li;
    });
    if (!items.length && result.bundle) {
      const none = document.createElement("li");
      none.className = "ok";
      none.textContent = "none";
      items.push(none);
    }
    out.issues.replaceChildren(...items);
    out.unmapped.textContent = (result.unmapped || []).join(", ");
    out.explain.textContent = result.explanation || "";
  }

  async function mapNow() {
    const ticket = ++latest;
    if (!text.value.trim()) { show({ issues: [], unmapped: [], timezone: "" }); return; }
    state.textContent = "mapping…";
    try {
      const response = await fetch("/api/v1/playground", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": form.dataset.csrf },
        body: JSON.stringify({ text: text.value, profile: profile.value }),
      });
      const result = await response.json();
      if (ticket !== latest) return; // a newer request is on its way
      if (!response.ok) { showError(result.error || ("HTTP " + response.status)); }
      else { show(result); }
      state.textContent = "";
    } catch (err) {
      if (ticket === latest) state.textContent = "could not reach the gateway";
    }
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(mapNow, 400);
  }
  text.addEventListener("input", later);
  profile.addEventListener("change", later);
})();
