// The live terminal view: frames of the agent's pane (server-sent events) drawn by
// xterm.js at the pane's own size. Read-only: keys typed here are not sent anywhere.
"use strict";
(function () {
  const box = document.getElementById("terminal");
  if (!box) return;
  const agent = box.dataset.agent;
  const status = document.getElementById("term-status");
  const term = new Terminal({ cols: 80, rows: 24, disableStdin: true, cursorBlink: false,
    fontSize: 13, scrollback: 0, convertEol: false });
  term.open(box);
  window.fleetTerminal = term;
  window.fleetScreenText = () => {
    const buffer = term.buffer.active;
    const rows = [];
    for (let y = 0; y < term.rows; y++) {
      const line = buffer.getLine(buffer.viewportY + y);
      rows.push(line ? line.translateToString(true) : "");
    }
    return rows.join("\n");
  };
  const source = new EventSource("/agents/" + encodeURIComponent(agent) + "/screen");
  source.addEventListener("frame", (event) => {
    const f = JSON.parse(event.data);
    if (term.cols !== f.width || term.rows !== f.height) term.resize(f.width, f.height);
    const cursor = "\x1b[" + (f.cursor_y + 1) + ";" + (f.cursor_x + 1) + "H";
    term.write("\x1b[?25l\x1b[0m\x1b[H\x1b[2J" + f.lines.join("\r\n") + cursor +
      (f.cursor_visible ? "\x1b[?25h" : ""));
    status.textContent = (f.dead ? "the pane's program has exited · " : "live · ") +
      f.width + "×" + f.height + " · updated " + new Date().toLocaleTimeString();
    box.dataset.frames = String(Number(box.dataset.frames || 0) + 1);
  });
  source.addEventListener("gone", (event) => { status.textContent = event.data; });
  source.onerror = () => { status.textContent = "lost the feed; retrying…"; };
})();

// Take control (only when the console offers it: FLEET_CONSOLE_TAKE_CONTROL): keys typed
// in the terminal go to the pane, batched a few milliseconds, each batch a CSRF-checked
// POST; giving control back (or leaving the page) ends the audited session.
(function () {
  const take = document.getElementById("take-control");
  const term = window.fleetTerminal;
  if (!take || !term) return;
  const back = document.getElementById("give-back");
  const status = document.getElementById("control-status");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const base = "/agents/" + encodeURIComponent(document.getElementById("terminal").dataset.agent) + "/control/";
  let session = "";
  let pending = "";
  let timer = 0;
  let sending = Promise.resolve();

  async function post(what, fields) {
    const reply = await fetch(base + what, {
      method: "POST",
      headers: { Accept: "application/json", "X-CSRF-Token": csrf, "Content-Type": "application/json" },
      body: JSON.stringify(fields),
      credentials: "same-origin",
    });
    let data = { ok: false, message: reply.statusText };
    try { data = await reply.json(); } catch (e) { /* keep the status */ }
    if (!reply.ok || !data.ok) throw new Error(data.message);
    return data;
  }

  function ended(message) {
    session = "";
    term.options.disableStdin = true;
    take.hidden = false;
    back.hidden = true;
    status.textContent = message;
    document.body.dataset.control = "";
  }

  function flush() {
    timer = 0;
    if (!session || !pending) return;
    const data = pending;
    pending = "";
    sending = sending.then(() => post("keys", { session: session, data: data }))
      .then(() => { document.body.dataset.keysSent = String(Number(document.body.dataset.keysSent || 0) + data.length); })
      .catch((e) => ended("control lost: " + e.message));
  }

  term.onData((data) => {
    if (!session) return;
    pending += data;
    if (!timer) timer = setTimeout(flush, 15);
  });

  take.addEventListener("click", async () => {
    try {
      const data = await post("take", {});
      session = data.session;
      term.options.disableStdin = false;
      take.hidden = true;
      back.hidden = false;
      status.textContent = "You have control: keys typed in the terminal go to the pane.";
      document.body.dataset.control = session;
      term.focus();
    } catch (e) {
      status.textContent = e.message;
    }
  });

  back.addEventListener("click", async () => {
    flush();
    await sending;
    const was = session;
    try {
      await post("end", { session: was });
      ended("Read-only again.");
    } catch (e) {
      ended(e.message);
    }
  });

  window.addEventListener("pagehide", () => {
    if (!session) return;
    flush();
    navigator.sendBeacon(base + "end", new URLSearchParams({ session: session, csrf: csrf }));
  });
})();
