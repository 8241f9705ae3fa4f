/** Test helpers (imported by the *.test.ts files only): a fake EventSource the tests drive by hand. */
import { vi } from "vitest";

export class FakeSource {
  static opened: FakeSource[] = [];
  listeners = new Map<string, ((e: MessageEvent) => void)[]>();
  readyState = 0;
  closed = false;

  constructor(readonly url: string) {
    FakeSource.opened.push(this);
  }

  /** The job ids the page named in this stream's URL. */
  get follows(): string[] {
    return new URL(this.url, "http://x").searchParams.get("follow")?.split(",") ?? [];
  }

  addEventListener(name: string, f: (e: MessageEvent) => void) {
    this.listeners.set(name, [...(this.listeners.get(name) ?? []), f]);
  }

  close() {
    this.closed = true;
    this.readyState = 2;
  }

  emit(name: string, data?: unknown) {
    if (name !== "error") this.readyState = 1;
    for (const f of this.listeners.get(name) ?? []) f({ data: data === undefined ? undefined : JSON.stringify(data) } as MessageEvent);
  }

  /** Installs the fake as the global EventSource; returns the streams it opens. */
  static install(): FakeSource[] {
    FakeSource.opened = [];
    vi.stubGlobal("EventSource", FakeSource);
    return FakeSource.opened;
  }
}

/** Lets pending timers of delay 0 and promise callbacks run. */
export const tick = () => new Promise((r) => setTimeout(r, 5));

export const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
