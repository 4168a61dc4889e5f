// The console's page script: live panels from /live (server-sent events), and every
// action form posted with the page's CSRF token, its answer shown as one line.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const toast = document.getElementById("toast");
  let toastTimer = 0;

  function say(message, ok) {
    toast.textContent = message;
    toast.className = ok ? "toast" : "toast error";
    toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toast.hidden = true; }, ok ? 4000 : 10000);
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.classList.contains("act")) return;
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const body = new URLSearchParams(new FormData(form));
    body.set("csrf", csrf);
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const reply = await fetch(form.action, {
        method: "POST",
        headers: { Accept: "application/json", "X-CSRF-Token": csrf },
        body: body,
        credentials: "same-origin",
      });
      let data = { ok: reply.ok, message: reply.statusText };
      try { data = await reply.json(); } catch (e) { /* not JSON: keep the status */ }
      say(data.message, reply.ok && data.ok);
      if (reply.ok && form.querySelector("textarea, input[name=text], input[name=title]")) form.reset();
      if (reply.ok && document.querySelector("main.detail")) setTimeout(() => location.reload(), 300);
    } catch (e) {
      say("the console did not answer: " + e, false);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  });

  // Live panels: each event replaces the part of the page it is named after.
  const parts = ["header", "agents", "columns"].filter((id) => document.getElementById(id));
  if (parts.length === 0) return;
  const down = document.getElementById("down");
  const source = new EventSource("/live");
  parts.forEach((id) => {
    source.addEventListener(id, (event) => {
      const node = document.getElementById(id);
      // keep what the operator is typing in a live part (the pause reason)
      const active = node.contains(document.activeElement) ? document.activeElement : null;
      if (active && active.value) return;
      node.innerHTML = event.data;
      node.querySelectorAll('input[name="csrf"]').forEach((i) => { i.value = csrf; });
      down.hidden = true;
      document.body.dataset.updated = String(Date.now());
    });
  });
  source.addEventListener("down", (event) => { down.textContent = event.data; down.hidden = false; });
  source.onerror = () => { down.textContent = "lost the console's live feed; retrying…"; down.hidden = false; };
  source.onopen = () => { down.hidden = true; };
})();
