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
