// Written by `fleet start` into this agent's opencode home and named in its opencode.json:
// opencode tells fleet-queue what it does by running the fleet hook program (workers.hooks)
// at its own events, as Claude Code runs it from settings.json. Never fails opencode's turn.
import { spawn } from "node:child_process";

const HOOK = __FLEET_HOOK__;
const WHERE = __FLEET_WHERE__;
const READY_EVENT = "catalog.updated";
// Measured on 1.18.33: the plugin starts ~2.5 s before the TUI takes keys; its server's
// first catalog update comes ~0.5 s after the TUI does. Ready is that update, not the start.

let queue = Promise.resolve();

function hook(event, payload) {
  // One at a time and in order: a turn's end must never overtake its prompt.
  queue = queue.then(
    () =>
      new Promise((resolve) => {
        try {
          const child = spawn(HOOK[0], [...HOOK.slice(1), event, ...WHERE], {
            stdio: ["pipe", "ignore", "ignore"],
          });
          child.on("error", () => resolve());
          child.on("close", () => resolve());
          child.stdin.on("error", () => undefined);
          child.stdin.end(JSON.stringify(payload));
        } catch {
          resolve();
        }
      }),
  );
  return queue;
}

export const FleetQueue = async () => {
  let ready = false;
  let busy = false;
  const children = new Set();
  const texts = new Map();
  let lastAssistant = null;
  let lastError = false;
  return {
    "chat.message": async (input, output) => {
      if (children.has(input?.sessionID)) return;
      const parts = Array.isArray(output?.parts) ? output.parts : [];
      const prompt = parts
        .filter((p) => p?.type === "text" && !p.synthetic)
        .map((p) => p.text)
        .join("");
      busy = true;
      lastError = false;
      lastAssistant = null;
      await hook("UserPromptSubmit", { prompt, session_id: input?.sessionID });
    },
    event: async ({ event }) => {
      const type = event?.type;
      const props = event?.properties ?? {};
      if (type === READY_EVENT && !ready) {
        ready = true;
        await hook("SessionStart", {});
      } else if (type === "session.created" && props.info?.parentID) {
        children.add(props.info.id);
      } else if (children.has(props.sessionID ?? props.info?.sessionID)) {
        return;
      } else if (type === "message.updated" && props.info?.role === "assistant") {
        lastAssistant = props.info.id;
        if (props.info.error) lastError = true;
      } else if (type === "message.part.updated" && props.part?.type === "text") {
        texts.set(props.part.messageID, props.part.text);
      } else if (type === "session.error") {
        lastError = true;
      } else if (type === "permission.asked" || type === "permission.updated") {
        await hook("PermissionRequest", {});
      } else if (type === "permission.replied") {
        await hook("PostToolUse", {});
      } else if (
        busy &&
        (type === "session.idle" || (type === "session.status" && props.status?.type === "idle"))
      ) {
        busy = false;
        const text = lastAssistant ? texts.get(lastAssistant) ?? "" : "";
        texts.clear();
        await hook(lastError ? "StopFailure" : "Stop", {
          last_assistant_message: text,
          session_id: props.sessionID,
        });
      }
    },
  };
};
