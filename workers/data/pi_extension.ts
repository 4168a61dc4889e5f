// Written by `fleet start` into this agent's PI_CODING_AGENT_DIR/extensions: pi tells
// fleet-queue what it does by running the fleet hook program (workers.hooks) at its own
// events, as Claude Code runs it from settings.json. The hook never fails pi's turn.
import { spawn } from "node:child_process";

const HOOK: string[] = __FLEET_HOOK__;
const WHERE: string[] = __FLEET_WHERE__;

function hook(event: string, payload: Record<string, unknown>): Promise<void> {
  return new Promise((resolve) => {
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
  });
}

function lastAssistant(messages: any[]): any {
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i]?.role === "assistant") return messages[i];
  }
  return undefined;
}

function textOf(message: any): string {
  const content = message?.content;
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.filter((c: any) => c?.type === "text").map((c: any) => c.text).join("");
}

export default function (pi: any) {
  pi.on("session_start", async () => {
    await hook("SessionStart", {});
  });
  pi.on("before_agent_start", async (event: any) => {
    await hook("UserPromptSubmit", { prompt: typeof event?.prompt === "string" ? event.prompt : "" });
  });
  pi.on("agent_end", async (event: any, ctx: any) => {
    const last = lastAssistant(Array.isArray(event?.messages) ? event.messages : []);
    const failed = last?.stopReason === "error";
    const payload: Record<string, unknown> = { last_assistant_message: textOf(last) };
    const file = ctx?.sessionManager?.getSessionFile?.();
    if (typeof file === "string") payload.session_file = file;
    await hook(failed ? "StopFailure" : "Stop", payload);
  });
  pi.on("session_shutdown", async () => {
    await hook("SessionEnd", {});
  });
}
