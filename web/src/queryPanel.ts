/** The query panel: input expression (set names offered as you type), output, criterion, thresholds, circuit. */
import type { ModelInfo, SetInfo } from "./api";
import { complete, spell, suggest, tokenAt } from "./complete";
import { h } from "./dom";
import { parseSample, type Rule, type ViewState } from "./state";

const CRITERIA: Record<string, string> = {
  weight: "weight",
  activation: "activation",
  gradient: "gradient",
  taylor: "activation × gradient",
  taylor_signed: "activation × gradient (signed)",
};

export interface QueryCallbacks {
  change(patch: Partial<ViewState>): void;
  run(): void;
  circuit(): void;
  pick(on: boolean): void;
  layouts(): string[];
}

export class QueryPanel {
  readonly time: HTMLElement;
  private imagesInput: HTMLInputElement;
  private targetInput: HTMLInputElement;
  private sampleInput: HTMLInputElement;
  private suggestions: HTMLUListElement;
  private pickButton: HTMLButtonElement;
  private runButton: HTMLButtonElement;
  private circuitButton: HTMLButtonElement;
  private names: string[] = [];
  private active = 0;

  constructor(private readonly host: HTMLElement, model: ModelInfo, private state: ViewState, private readonly cb: QueryCallbacks) {
    this.imagesInput = h("input", { id: "q-images", type: "text", autocomplete: "off", spellcheck: "false", value: state.images, placeholder: "e.g. sandal - overall" });
    this.suggestions = h("ul", { class: "suggest", role: "listbox", hidden: true });
    this.targetInput = h("input", { id: "q-target", type: "text", list: "q-targets", spellcheck: "false", value: state.target });
    this.pickButton = h("button", { id: "q-pick", class: "small", title: "then click a node in the graph", onclick: () => this.setPicking(!this.pickButton.classList.contains("on")) }, "pick");
    this.runButton = h("button", { id: "q-run", class: "primary", onclick: () => this.submit() }, "Run query");
    this.circuitButton = h("button", { id: "q-circuit", onclick: () => { this.commit(); cb.circuit(); } }, "Extract circuit");
    this.time = h("div", { id: "q-time", class: "muted" });
    this.sampleInput = h("input", { id: "q-sample", type: "number", min: 0, max: 1000000, step: 100, placeholder: "500", value: state.sample ?? "",
      title: "score at most this many images of each set (a fixed choice); 0: every image; empty: the server's default (sets over 500 images sampled to 500)",
      onchange: () => cb.change({ sample: parseSample(this.sampleInput.value) }) });
    const classes = (model.classes ?? []).map((c) => h("option", { value: `class:${c}` }));
    const criterion = h("select", { id: "q-criterion", onchange: (e: Event) => cb.change({ criterion: (e.target as HTMLSelectElement).value }) },
      ...(model.criteria ?? Object.keys(CRITERIA)).map((c) => h("option", { value: c, selected: c === state.criterion }, CRITERIA[c] ?? c)));
    const method = h("select", { id: "q-method", onchange: (e: Event) => cb.change({ method: (e.target as HTMLSelectElement).value }) },
      ...(model.methods ?? ["actgrad"]).map((m) => h("option", { value: m, selected: m === state.method }, m)));
    const layout = h("select", { id: "q-layout", onchange: (e: Event) => cb.change({ layout: (e.target as HTMLSelectElement).value }) });
    this.refreshLayouts(layout);
    host.replaceChildren(
      h("h2", {}, "Query"),
      h("label", { for: "q-images" }, "Input ", h("span", { class: "muted" }, "image sets: a + b, a - overall, 2*a")),
      h("div", { class: "combo" }, this.imagesInput, this.suggestions),
      h("label", { for: "q-target" }, "Output ", h("span", { class: "muted" }, "loss, class:NAME, LAYER:C")),
      h("div", { class: "row" }, this.targetInput, this.pickButton),
      h("datalist", { id: "q-targets" }, h("option", { value: "loss" }), ...classes),
      h("label", { for: "q-criterion" }, "Criterion"), criterion,
      h("div", { class: "thresholds" },
        this.rule("Nodes", "nodeRule", "nodeValue"),
        this.rule("Kernels", "edgeRule", "edgeValue"),
        h("label", { title: "the strongest kernels drawn (into the kept nodes), at most this many: a budget keeps the graph readable" }, "kernel budget", h("input", { id: "q-max", type: "number", min: 0, max: 1000000, step: 1000, value: state.maxEdges,
          onchange: (e: Event) => cb.change({ maxEdges: Number((e.target as HTMLInputElement).value) }) })),
        h("label", {}, "images per set ", h("span", { class: "muted" }, "sample; 0: all"), this.sampleInput)),
      h("div", { class: "row" }, this.runButton, this.time),
      h("h3", {}, "Circuit"),
      h("div", { class: "row" },
        h("label", {}, "method ", method),
        h("label", {}, "keep ", h("input", { id: "q-keep", type: "number", min: 0.001, max: 1, step: 0.01, value: state.keep,
          onchange: (e: Event) => cb.change({ keep: Number((e.target as HTMLInputElement).value) }) }))),
      h("div", { class: "row" }, this.circuitButton),
      h("h3", {}, "Graph layout"), layout,
    );
    this.imagesInput.addEventListener("input", () => this.offer());
    this.imagesInput.addEventListener("keydown", (e) => this.key(e));
    this.imagesInput.addEventListener("blur", () => setTimeout(() => (this.suggestions.hidden = true), 150));
    this.imagesInput.addEventListener("focus", () => this.offer());
    this.targetInput.addEventListener("keydown", (e) => e.key === "Enter" && this.submit());
    // Typed text becomes state when the field is left, so other changes never overwrite it.
    this.imagesInput.addEventListener("change", () => this.commit());
    this.targetInput.addEventListener("change", () => this.commit());
  }

  setSets(sets: SetInfo[]): void {
    this.names = sets.map((s) => s.name);
  }

  refreshLayouts(select = this.host.querySelector<HTMLSelectElement>("#q-layout")): void {
    if (!select) return;
    select.replaceChildren(...this.cb.layouts().map((k) => h("option", { value: k, selected: k === this.state.layout }, k)));
  }

  /** Shows the state (after a URL change or a pick). */
  update(state: ViewState): void {
    this.state = state;
    if (document.activeElement !== this.imagesInput) this.imagesInput.value = state.images;
    if (document.activeElement !== this.targetInput) this.targetInput.value = state.target;
    if (document.activeElement !== this.sampleInput) this.sampleInput.value = state.sample === null ? "" : String(state.sample);
    // the other fields too (Back and Forward restore a query's fields, not only its text)
    const field = (id: string, value: string | number) => {
      const el = this.host.querySelector<HTMLInputElement | HTMLSelectElement>(`#${id}`);
      if (el && document.activeElement !== el && el.value !== String(value)) el.value = String(value);
    };
    field("q-criterion", state.criterion);
    field("q-nodes-rule", state.nodeRule);
    field("q-nodes-value", state.nodeValue);
    field("q-edges-rule", state.edgeRule);
    field("q-edges-value", state.edgeValue);
    field("q-max", state.maxEdges);
    field("q-method", state.method);
    field("q-keep", state.keep);
  }

  setBusy(busy: boolean, what: "query" | "circuit"): void {
    (what === "query" ? this.runButton : this.circuitButton).disabled = busy;
  }

  setPicking(on: boolean): void {
    this.pickButton.classList.toggle("on", on);
    this.pickButton.textContent = on ? "click a node…" : "pick";
    this.cb.pick(on);
  }

  private rule(label: string, ruleKey: "nodeRule" | "edgeRule", valueKey: "nodeValue" | "edgeValue"): HTMLElement {
    const id = ruleKey === "nodeRule" ? "q-nodes" : "q-edges";
    return h("label", {}, label,
      h("select", { id: `${id}-rule`, onchange: (e: Event) => this.cb.change({ [ruleKey]: (e.target as HTMLSelectElement).value as Rule }) },
        h("option", { value: "fraction", selected: this.state[ruleKey] === "fraction" }, "top fraction"),
        h("option", { value: "cumulative", selected: this.state[ruleKey] === "cumulative" }, "cumulative")),
      h("input", { id: `${id}-value`, type: "number", min: 0, max: 1, step: 0.05, value: this.state[valueKey],
        onchange: (e: Event) => this.cb.change({ [valueKey]: Number((e.target as HTMLInputElement).value) }) }));
  }

  private commit(): void {
    this.cb.change({ images: this.imagesInput.value.trim() || "overall", target: this.targetInput.value.trim() || "loss" });
  }

  private submit(): void {
    this.suggestions.hidden = true;
    this.commit();
    this.cb.run();
  }

  private offer(): void {
    const token = tokenAt(this.imagesInput.value, this.imagesInput.selectionStart ?? this.imagesInput.value.length);
    const names = token ? suggest(this.names, token.prefix) : [];
    this.active = 0;
    this.suggestions.replaceChildren(...names.map((name, i) =>
      h("li", { role: "option", class: i === 0 ? "active" : "", "data-name": name, onmousedown: (e: Event) => { e.preventDefault(); this.accept(name); } }, name)));
    this.suggestions.hidden = names.length === 0;
  }

  private accept(name: string): void {
    const value = this.imagesInput.value;
    const token = tokenAt(value, this.imagesInput.selectionStart ?? value.length);
    if (!token) return;
    const next = complete(value, token, name);
    this.imagesInput.value = next.text;
    this.imagesInput.setSelectionRange(next.cursor, next.cursor);
    this.suggestions.hidden = true;
  }

  private key(e: KeyboardEvent): void {
    const items = [...this.suggestions.children] as HTMLElement[];
    if (!this.suggestions.hidden && items.length) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        this.active = (this.active + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
        items.forEach((item, i) => item.classList.toggle("active", i === this.active));
        return;
      }
      if (e.key === "Tab" || (e.key === "Enter" && items.length)) {
        const token = tokenAt(this.imagesInput.value, this.imagesInput.selectionStart ?? 0);
        const chosen = items[this.active]?.dataset.name;
        if (chosen && token && token.prefix !== spell(chosen)) {
          e.preventDefault();
          this.accept(chosen);
          return;
        }
      }
      if (e.key === "Escape") {
        this.suggestions.hidden = true;
        return;
      }
    }
    if (e.key === "Enter") this.submit();
  }
}
