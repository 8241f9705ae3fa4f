/** The input image: pick one from the image sets or upload one; every panel follows it. */
import type { Api, ImageInfo, SetInfo } from "./api";
import { h, status, statusOf } from "./dom";

export class ImagePicker {
  private grid: HTMLElement;
  private select: HTMLSelectElement;
  private current: HTMLElement;
  private message: HTMLElement;

  constructor(host: HTMLElement, private readonly api: Api, private readonly choose: (id: string) => void) {
    this.select = h("select", { id: "img-set", onchange: () => this.list(this.select.value) });
    this.grid = h("div", { class: "thumbs", id: "img-thumbs" });
    this.current = h("div", { class: "current-image" });
    this.message = h("div");
    const file = h("input", { type: "file", id: "img-upload", accept: "image/*", onchange: (e: Event) => this.upload((e.target as HTMLInputElement)) });
    host.replaceChildren(h("h2", {}, "Input image"), this.current, h("div", { class: "row" }, this.select, h("label", { class: "upload button small" }, "upload…", file)), this.message, this.grid);
  }

  setSets(sets: SetInfo[], initial?: string): void {
    const real = sets.filter((s) => s.name !== "overall");
    this.select.replaceChildren(...sets.map((s) => h("option", { value: s.name }, `${s.name} (${s.count})`)));
    const first = initial && sets.some((s) => s.name === initial) ? initial : real[0]?.name ?? sets[0]?.name;
    if (first) {
      this.select.value = first;
      void this.list(first);
    } else this.grid.replaceChildren(status("no image sets"));
  }

  show(id: string | null, info?: ImageInfo): void {
    if (id && !info) {
      // after a reload only the id is known: its name and label come from the server
      this.api.imageInfo(id).then((found) => {
        if (found && this.current.dataset.image === id) this.show(id, found);
      }, () => undefined);
    }
    this.current.dataset.image = id ?? "";
    this.current.replaceChildren(id
      ? h("div", { class: "row" }, h("img", { src: this.api.imageUrl(id), class: "pix big", alt: id }), h("div", { class: "muted" }, info ? `${info.name} · ${info.label_name ?? info.set}` : id))
      // as tall as a chosen image, so choosing one does not move the page below
      : h("div", { class: "row" }, h("div", { class: "big placeholder", "aria-hidden": "true" }), h("div", { class: "muted" }, "none chosen: click a thumbnail")));
    for (const el of this.grid.querySelectorAll<HTMLElement>("[data-image]")) el.classList.toggle("on", el.dataset.image === id);
  }

  private async list(set: string): Promise<void> {
    this.grid.replaceChildren(status("loading…", "busy"));
    try {
      const images = await this.api.images(set, 48);
      this.grid.replaceChildren(...images.map((im) => h("img", {
        src: this.api.imageUrl(im.id), class: "pix thumb-img", alt: im.name, title: `${im.name} (${im.label_name ?? im.set})`, "data-image": im.id,
        onclick: () => {
          this.choose(im.id);
          this.show(im.id, im);
        },
      })));
    } catch (error) {
      this.grid.replaceChildren(statusOf(error));
    }
  }

  private async upload(input: HTMLInputElement): Promise<void> {
    const file = input.files?.[0];
    if (!file) return;
    this.message.replaceChildren(status(`uploading ${file.name}…`, "busy"));
    try {
      const info = await this.api.upload(file);
      this.message.replaceChildren();
      this.choose(info.id);
      this.show(info.id, info);
    } catch (error) {
      this.message.replaceChildren(statusOf(error));
    }
    input.value = "";
  }
}
