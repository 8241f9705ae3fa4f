/** "Go to node": LAYER:CHANNEL typed with completion of layer names and a channel range check. */
import type { LayerInfo } from "./api";
import { h } from "./dom";

export interface Found { layer: string; channel: number }

/** The layers a typed layer part names: the exact name, else those it starts, else those it contains (case-insensitive). */
export function matchLayers(text: string, layers: Pick<LayerInfo, "name">[]): string[] {
  const t = text.trim().toLowerCase();
  const names = layers.map((l) => l.name);
  const exact = names.filter((n) => n.toLowerCase() === t);
  if (exact.length) return exact;
  const starts = names.filter((n) => n.toLowerCase().startsWith(t));
  const contains = names.filter((n) => !n.toLowerCase().startsWith(t) && n.toLowerCase().includes(t));
  return [...starts, ...contains];
}

/** The node `text` names ("features.3:5", "features.3 5", or a unique part of a layer name and a channel), or why not. */
export function parseGoTo(text: string, layers: Pick<LayerInfo, "name" | "out_channels" | "kind">[]): Found | { error: string } {
  const match = /^\s*(.+?)\s*[: ]\s*(\d+)\s*$/.exec(text);
  if (!match) return { error: "type LAYER:CHANNEL, e.g. features.3:5" };
  const usable = layers.filter((l) => l.kind === "conv");
  const names = matchLayers(match[1], usable);
  if (!names.length) return { error: `no conv layer matches '${match[1]}'` };
  if (names.length > 1 && names[0].toLowerCase() !== match[1].trim().toLowerCase()) {
    return { error: `'${match[1]}' matches ${names.length} layers: ${names.slice(0, 4).join(", ")}${names.length > 4 ? ", …" : ""}` };
  }
  const layer = usable.find((l) => l.name === names[0])!;
  const channel = Number(match[2]);
  if (channel >= layer.out_channels) return { error: `${layer.name} has channels 0..${layer.out_channels - 1}` };
  return { layer: layer.name, channel };
}

/** Completions of what is typed: layer names (with ':') until a ':' is typed, then channels of that layer. */
export function goToSuggestions(text: string, layers: Pick<LayerInfo, "name" | "out_channels" | "kind">[], limit = 8): string[] {
  const usable = layers.filter((l) => l.kind === "conv");
  const colon = text.lastIndexOf(":");
  if (colon < 0) return matchLayers(text, usable).slice(0, limit).map((n) => `${n}:`);
  const names = matchLayers(text.slice(0, colon), usable);
  const layer = usable.find((l) => l.name === names[0]);
  if (!layer || names.length > 1 && names[0] !== text.slice(0, colon).trim()) return names.slice(0, limit).map((n) => `${n}:`);
  const typed = text.slice(colon + 1).trim();
  if (typed && !/^\d+$/.test(typed)) return [];
  const out: string[] = [];
  for (let c = 0; c < layer.out_channels && out.length < limit; c++) if (String(c).startsWith(typed)) out.push(`${layer.name}:${c}`);
  return out;
}

/** The search box: suggestions as you type, Enter (or a click on one) goes there; a bad name says why. */
export class GoToBox {
  readonly element: HTMLElement;
  private readonly input: HTMLInputElement;
  private readonly list: HTMLUListElement;
  private readonly message: HTMLElement;
  private active = -1;

  constructor(private readonly layers: LayerInfo[], private readonly go: (found: Found) => void) {
    this.input = h("input", { id: "goto", type: "text", placeholder: "go to node: layer:channel", autocomplete: "off", spellcheck: "false" });
    this.list = h("ul", { class: "suggest", role: "listbox", hidden: true });
    this.message = h("span", { class: "goto-message", role: "status" });
    this.element = h("div", { class: "goto combo" }, this.input, this.list, this.message);
    this.input.addEventListener("input", () => this.offer());
    this.input.addEventListener("focus", () => this.offer());
    this.input.addEventListener("blur", () => setTimeout(() => (this.list.hidden = true), 150));
    this.input.addEventListener("keydown", (e) => this.key(e));
  }

  private offer(): void {
    const items = goToSuggestions(this.input.value, this.layers);
    this.active = -1;
    this.message.textContent = "";
    this.list.replaceChildren(...items.map((text) => h("li", { role: "option", "data-name": text, onmousedown: (e: Event) => {
      e.preventDefault();
      this.take(text);
    } }, text)));
    this.list.hidden = !items.length;
  }

  private take(text: string): void {
    this.input.value = text;
    if (text.endsWith(":")) this.offer();
    else this.submit();
  }

  private submit(): void {
    const found = parseGoTo(this.input.value, this.layers);
    if ("error" in found) {
      this.message.textContent = found.error;
      return;
    }
    this.list.hidden = true;
    this.message.textContent = "";
    this.go(found);
  }

  private key(e: KeyboardEvent): void {
    const items = [...this.list.children] as HTMLElement[];
    if ((e.key === "ArrowDown" || e.key === "ArrowUp") && items.length && !this.list.hidden) {
      e.preventDefault();
      this.active = (this.active + (e.key === "ArrowDown" ? 1 : items.length - 1) + (this.active < 0 && e.key === "ArrowUp" ? 1 : 0)) % items.length;
      items.forEach((item, i) => item.classList.toggle("active", i === this.active));
    } else if (e.key === "Tab" && items.length && !this.list.hidden) {
      e.preventDefault();
      this.take(items[Math.max(0, this.active)].dataset.name!);
    } else if (e.key === "Enter") {
      e.preventDefault();
      if (this.active >= 0 && items[this.active] && !this.list.hidden) this.take(items[this.active].dataset.name!);
      else this.submit();
    } else if (e.key === "Escape") this.list.hidden = true;
  }
}
