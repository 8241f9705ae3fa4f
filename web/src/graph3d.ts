/**
 * The 3D network graph (three.js): every node as a point sprite, highlighted edges as instanced
 * screen-space quads (so their width can follow the score), orbit controls, CPU picking in screen space.
 * It renders on demand only, so an idle page costs nothing.
 */
import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import { SIGN_RGB, normalise, type Sign } from "./colors";
import type { NodeIndex, Placement, Segments } from "./geometry";
import { EDGE_FRAGMENT, EDGE_VERTEX, NODE_FRAGMENT, NODE_VERTEX } from "./shaders";

export interface Pick { node: number | null; segment: number | null }
export interface GraphCallbacks {
  hover(pick: Pick, x: number, y: number): void;
  click(pick: Pick): void;
}
export interface NodeStyle {
  /** Score per node (NaN: not scored); kept nodes are drawn large and bright, the rest dim. */
  scores: Float32Array;
  kept: Uint8Array;
  signed: boolean;
  /** RGB (0..1) per node for the kept ones, in place of the score's colour (an overlay of two queries). */
  colours?: Float32Array;
}

export class NetworkGraph {
  readonly canvas: HTMLCanvasElement;
  private renderer: THREE.WebGLRenderer;
  private scene = new THREE.Scene();
  private camera = new THREE.PerspectiveCamera(45, 1, 0.1, 5000);
  private controls: OrbitControls;
  private nodeGeometry = new THREE.BufferGeometry();
  private nodeMaterial: THREE.ShaderMaterial;
  private ringGeometry = new THREE.BufferGeometry();
  private edgeMesh: THREE.Mesh | null = null;
  private index: NodeIndex | null = null;
  private placement: Placement | null = null;
  private segs: Segments | null = null;
  private screen = new Float32Array(0);
  private screenStale = true;
  private pending = false;
  private labels: HTMLDivElement;
  private labelEls: HTMLSpanElement[] = [];
  private selected: number | null = null;
  private hovered: number | null = null;
  private pointerDown: [number, number] | null = null;
  /** Until the user moves the camera, a resize refits the view. */
  private moved = false;
  frames = 0;
  /** Edges drawn per frame while the camera moves: adapted to keep about 30 frames per second. */
  lodEdges = 20000;
  private moving = false;
  private wasMoving = false;
  private coarse = false;
  private lastFrame = 0;
  private settle: number | undefined;
  private edgesPainted = false;

  constructor(private readonly host: HTMLElement, private readonly callbacks: GraphCallbacks) {
    this.renderer = new THREE.WebGLRenderer({ antialias: false, alpha: false, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    this.renderer.setClearColor(0x11141b);
    this.canvas = this.renderer.domElement;
    this.canvas.className = "graph-canvas";
    host.appendChild(this.canvas);
    this.labels = document.createElement("div");
    this.labels.className = "graph-labels";
    host.appendChild(this.labels);
    this.controls = new OrbitControls(this.camera, this.canvas);
    this.controls.zoomToCursor = true;
    this.controls.addEventListener("change", () => this.requestRender());
    this.controls.addEventListener("start", () => {
      this.moved = true;
      this.setMoving(true);
    });
    this.controls.addEventListener("end", () => this.setMoving(false));
    this.nodeMaterial = new THREE.ShaderMaterial({
      vertexShader: NODE_VERTEX, fragmentShader: NODE_FRAGMENT, transparent: true, depthWrite: false,
      uniforms: { uScale: { value: 600 }, uRing: { value: -1 } },
    });
    this.scene.add(new THREE.Points(this.nodeGeometry, this.nodeMaterial));
    const ringMaterial = new THREE.ShaderMaterial({
      vertexShader: NODE_VERTEX, fragmentShader: NODE_FRAGMENT, transparent: true, depthWrite: false, depthTest: false,
      uniforms: { uScale: this.nodeMaterial.uniforms.uScale, uRing: { value: 0.45 } },
    });
    const rings = new THREE.Points(this.ringGeometry, ringMaterial);
    rings.renderOrder = 2;
    this.scene.add(rings);
    new ResizeObserver(() => this.resize()).observe(host);
    this.canvas.addEventListener("pointermove", (e) => this.onMove(e));
    this.canvas.addEventListener("pointerdown", (e) => (this.pointerDown = [e.clientX, e.clientY]));
    this.canvas.addEventListener("pointerup", (e) => this.onUp(e));
    this.canvas.addEventListener("pointerleave", () => this.setHover(null, 0, 0, { node: null, segment: null }));
    this.resize();
  }

  /** All nodes at their places; resets scores, edges and the camera. */
  setNodes(index: NodeIndex, placement: Placement, keepCamera = false): void {
    this.index = index;
    this.placement = placement;
    const n = index.count;
    this.nodeGeometry.setAttribute("position", new THREE.BufferAttribute(placement.positions, 3));
    this.nodeGeometry.setAttribute("aColor", new THREE.BufferAttribute(new Float32Array(n * 3).fill(0.62), 3));
    this.nodeGeometry.setAttribute("aSize", new THREE.BufferAttribute(new Float32Array(n).fill(0.45), 1));
    this.nodeGeometry.setAttribute("aAlpha", new THREE.BufferAttribute(new Float32Array(n).fill(0.55), 1));
    this.nodeGeometry.computeBoundingSphere();
    this.screen = new Float32Array(n * 3);
    this.setSegments(null);
    this.makeLabels();
    if (!keepCamera) this.fit();
    this.updateRings();
  }

  setStyle(style: NodeStyle): void {
    if (!this.index) return;
    const n = this.index.count;
    const colour = new Float32Array(n * 3);
    const size = new Float32Array(n);
    const alpha = new Float32Array(n);
    // Scores are normalised per layer: layers differ in scale by orders of magnitude.
    for (const layer of this.index.layers) {
      const start: number = this.index.offset.get(layer.name)!;
      const norm = normalise(style.scores.subarray(start, start + layer.out_channels));
      for (let c = 0; c < layer.out_channels; c++) {
        const i = start + c;
        const s = norm[c];
        if (style.kept[i]) {
          const rgb = style.colours ? style.colours.subarray(i * 3, i * 3 + 3)
            : style.signed ? SIGN_RGB[(Math.sign(style.scores[i]) || 0) as Sign] : [1.0, 0.78, 0.32];
          colour.set(rgb, i * 3);
          size[i] = 0.45 + 0.6 * s;
          alpha[i] = 0.65 + 0.35 * s;
        } else {
          colour.set([0.5, 0.52, 0.56], i * 3);
          size[i] = 0.25 + 0.15 * s;
          alpha[i] = 0.22 + 0.2 * s;
        }
      }
    }
    this.nodeGeometry.setAttribute("aColor", new THREE.BufferAttribute(colour, 3));
    this.nodeGeometry.setAttribute("aSize", new THREE.BufferAttribute(size, 1));
    this.nodeGeometry.setAttribute("aAlpha", new THREE.BufferAttribute(alpha, 1));
    this.requestRender();
  }

  /**
   * The highlighted edges (null: none). Width and opacity follow |score| within each layer; colour its kernel's
   * sign, or `colours` (RGB 0..1 per segment: an overlay of two queries).
   */
  setSegments(segs: Segments | null, colours?: Float32Array): void {
    if (this.edgeMesh) {
      this.scene.remove(this.edgeMesh);
      this.edgeMesh.geometry.dispose();
      this.edgeMesh = null;
    }
    this.segs = segs;
    this.edgesPainted = false;
    if (!segs || segs.count === 0 || !this.placement) return this.requestRender();
    const pos = this.placement.positions;
    const n = segs.count;
    const begin = new Float32Array(n * 3), end = new Float32Array(n * 3), colour = new Float32Array(n * 4), width = new Float32Array(n);
    const strength = new Float32Array(n);
    const byLayer = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      const list = byLayer.get(segs.layer[i]);
      if (list) list.push(i);
      else byLayer.set(segs.layer[i], [i]);
    }
    for (const members of byLayer.values()) {
      const norm = normalise(members.map((i) => segs.score[i]));
      members.forEach((i, k) => (strength[i] = norm[k]));
    }
    // Strongest first: while the camera moves, drawing the first K instances draws the K strongest edges.
    const order = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => strength[b] - strength[a]);
    for (let k = 0; k < n; k++) {
      const i = order[k];
      begin.set(pos.subarray(segs.from[i] * 3, segs.from[i] * 3 + 3), k * 3);
      end.set(pos.subarray(segs.to[i] * 3, segs.to[i] * 3 + 3), k * 3);
      const [r, g, b] = colours ? colours.subarray(i * 3, i * 3 + 3) : SIGN_RGB[segs.sign[i] as Sign];
      colour.set([r, g, b, 0.12 + 0.75 * strength[i]], k * 4);
      width[k] = 0.7 + 2.6 * strength[i] * strength[i];
    }
    const geometry = new THREE.InstancedBufferGeometry();
    geometry.setAttribute("corner", new THREE.BufferAttribute(new Float32Array([0, -1, 1, -1, 1, 1, 0, 1]), 2));
    geometry.setIndex([0, 1, 2, 0, 2, 3]);
    geometry.setAttribute("iStart", new THREE.InstancedBufferAttribute(begin, 3));
    geometry.setAttribute("iEnd", new THREE.InstancedBufferAttribute(end, 3));
    geometry.setAttribute("iColor", new THREE.InstancedBufferAttribute(colour, 4));
    geometry.setAttribute("iWidth", new THREE.InstancedBufferAttribute(width, 1));
    geometry.instanceCount = n;
    const material = new THREE.ShaderMaterial({
      vertexShader: EDGE_VERTEX, fragmentShader: EDGE_FRAGMENT, transparent: true, depthWrite: false,
      uniforms: { uResolution: { value: new THREE.Vector2(1, 1) } },
    });
    this.edgeMesh = new THREE.Mesh(geometry, material);
    this.edgeMesh.frustumCulled = false;
    this.edgeMesh.renderOrder = -1;
    this.scene.add(this.edgeMesh);
    this.requestRender();
  }

  get segments(): Segments | null {
    return this.segs;
  }

  select(node: number | null): void {
    this.selected = node;
    this.updateRings();
  }

  /** Rings a node from outside the canvas (a row of a list under the pointer); null removes the ring. */
  point(node: number | null): void {
    if (node === this.hovered) return;
    this.hovered = node;
    this.updateRings();
  }

  /** Back to the whole graph, as first shown (a resize then refits it again). */
  resetView(): void {
    this.moved = false;
    this.fit();
    this.screenStale = true;
  }

  /** Turns the camera to look at a node from where it is, and closer (a "go to node"). */
  focus(node: number): void {
    if (!this.placement) return;
    const p = new THREE.Vector3().fromArray(this.placement.positions, node * 3);
    const offset = this.camera.position.clone().sub(this.controls.target);
    const span = Math.max(...this.placement.size);
    offset.setLength(Math.max(span * 0.12, Math.min(offset.length(), span * 0.35)));
    this.controls.target.copy(p);
    this.camera.position.copy(p).add(offset);
    this.moved = true;
    this.controls.update();
    this.screenStale = true;
    this.requestRender();
  }

  /** Screen position (CSS pixels, relative to the canvas) of a node, for tests and tooltips. */
  nodeOnScreen(node: number): [number, number] | null {
    this.project();
    const z = this.screen[node * 3 + 2];
    return z > 0 && z < 1 ? [this.screen[node * 3], this.screen[node * 3 + 1]] : null;
  }

  requestRender(): void {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  /**
   * Orbits the camera about the vertical axis for `ms` milliseconds, drawing every frame, as a drag would.
   * With `lod` false every edge is drawn in every frame. Returns frames per second and edges per frame.
   */
  orbit(ms: number, lod = true): Promise<{ fps: number; edges: number }> {
    return new Promise((resolve) => {
      const t0 = performance.now();
      const frames0 = this.frames;
      let edges = 0;
      const saved = this.lodEdges;
      if (!lod) this.lodEdges = Number.MAX_SAFE_INTEGER;
      this.moving = true;
      const axis = new THREE.Vector3(0, 1, 0);
      let last = t0;
      const step = (now: number) => {
        const offset = this.camera.position.clone().sub(this.controls.target);
        offset.applyAxisAngle(axis, ((now - last) / 1000) * 0.6); // 0.6 rad/s
        last = now;
        this.camera.position.copy(this.controls.target).add(offset);
        this.camera.lookAt(this.controls.target);
        this.render();
        edges += this.drawnEdges;
        if (now - t0 < ms) requestAnimationFrame(step);
        else {
          const frames = this.frames - frames0;
          this.moving = false;
          if (!lod) this.lodEdges = saved;
          this.requestRender();
          resolve({ fps: (frames * 1000) / (now - t0), edges: edges / Math.max(frames, 1) });
        }
      };
      requestAnimationFrame(step);
    });
  }

  /**
   * While the camera moves only the strongest `lodEdges` edges are drawn, so orbiting stays fluid with
   * 10^5 edges even on a software renderer; all of them are drawn once it stops.
   */
  private setMoving(on: boolean): void {
    window.clearTimeout(this.settle);
    if (on) {
      this.moving = true;
      return;
    }
    this.settle = window.setTimeout(() => {
      this.moving = false;
      this.requestRender();
    }, 200);
  }

  private adapt(now: number): void {
    const dt = now - this.lastFrame;
    const first = !this.wasMoving;
    this.lastFrame = now;
    this.wasMoving = this.moving;
    if (!this.moving) {
      if (this.coarse) this.setCoarse(false);
      return;
    }
    if (first) return; // dt spans the idle time before the motion
    if (this.lodEdges >= Number.MAX_SAFE_INTEGER) return; // full detail asked for (benchmark)
    const total = this.segs?.count ?? 0;
    if (dt > 45) {
      if (this.lodEdges <= 1000 || this.lodEdges >= total) this.setCoarse(true); // edges are not the cost: pixels are
      this.lodEdges = Math.max(1000, Math.round(Math.min(this.lodEdges, total) * Math.max(0.1, Math.min(0.8, 33 / dt))));
    } else if (dt < 25 && this.lodEdges < total) this.lodEdges = Math.round(this.lodEdges * 1.25);
  }

  /** Half the pixels while moving, when even few edges are too slow (a software renderer). */
  private setCoarse(on: boolean): void {
    this.coarse = on;
    const ratio = Math.min(window.devicePixelRatio || 1, 2) * (on ? 0.5 : 1);
    this.renderer.setPixelRatio(ratio);
    this.renderer.setSize(Math.max(1, this.host.clientWidth), Math.max(1, this.host.clientHeight));
  }

  /** Edges drawn in the last frame. */
  get drawnEdges(): number {
    return this.edgeMesh ? (this.edgeMesh.geometry as THREE.InstancedBufferGeometry).instanceCount : 0;
  }

  private render(): void {
    const now = performance.now();
    this.adapt(now);
    if (this.edgeMesh && this.segs) {
      (this.edgeMesh.geometry as THREE.InstancedBufferGeometry).instanceCount = this.moving ? Math.min(this.segs.count, this.lodEdges) : this.segs.count;
    }
    const size = this.renderer.getSize(new THREE.Vector2());
    if (this.edgeMesh) (this.edgeMesh.material as THREE.ShaderMaterial).uniforms.uResolution.value.set(size.x, size.y);
    this.nodeMaterial.uniforms.uScale.value = (size.y * this.renderer.getPixelRatio()) / (2 * Math.tan((this.camera.fov * Math.PI) / 360));
    this.renderer.render(this.scene, this.camera);
    if (this.frames === 0 && this.index) performance.mark("viscnn-first-frame");
    if (this.edgeMesh && !this.edgesPainted) {
      this.edgesPainted = true;
      performance.mark("viscnn-edges-frame");
    }
    if (this.index) this.frames++;
    this.screenStale = true;
    this.placeLabels();
  }

  private resize(): void {
    const w = Math.max(1, this.host.clientWidth), h = Math.max(1, this.host.clientHeight);
    this.renderer.setSize(w, h);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.screenStale = true;
    if (!this.moved) this.fit();
    this.requestRender();
  }

  private fit(): void {
    if (!this.placement) return;
    const [lx, ly, lz] = this.placement.size;
    const span = Math.max(lx, ly, lz);
    // Far enough that the whole length (x) fits the width and the layers' extent fits the height.
    const tan = Math.tan((this.camera.fov * Math.PI) / 360);
    const distance = 0.95 * Math.max(lx / 2 / (tan * this.camera.aspect), Math.max(ly, lz) / 2 / tan) + Math.max(ly, lz) / 2;
    // The camera looks from the input's side, which perspective enlarges: aim a little towards it.
    this.controls.target.set(-0.06 * lx, 0, 0);
    this.camera.position.set(-0.55, 0.4, 1).normalize().multiplyScalar(distance).add(this.controls.target);
    this.camera.near = span / 1000;
    this.camera.far = span * 20;
    this.camera.updateProjectionMatrix();
    this.controls.update();
    this.requestRender();
  }

  private project(): void {
    if (!this.screenStale || !this.placement) return;
    this.camera.updateMatrixWorld();
    const m = new THREE.Matrix4().multiplyMatrices(this.camera.projectionMatrix, this.camera.matrixWorldInverse).elements;
    const p = this.placement.positions;
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    for (let i = 0; i < p.length / 3; i++) {
      const x = p[i * 3], y = p[i * 3 + 1], z = p[i * 3 + 2];
      const cw = m[3] * x + m[7] * y + m[11] * z + m[15];
      const cx = (m[0] * x + m[4] * y + m[8] * z + m[12]) / cw;
      const cy = (m[1] * x + m[5] * y + m[9] * z + m[13]) / cw;
      const cz = (m[2] * x + m[6] * y + m[10] * z + m[14]) / cw;
      this.screen[i * 3] = ((cx + 1) / 2) * w;
      this.screen[i * 3 + 1] = ((1 - cy) / 2) * h;
      this.screen[i * 3 + 2] = cw > 0 ? (cz + 1) / 2 : -1;
    }
    this.screenStale = false;
  }

  /** The node under (x, y) (within its drawn radius, at least 6 px), else the nearest edge within 4 px. */
  pick(x: number, y: number, edges = true): Pick {
    if (!this.index) return { node: null, segment: null };
    this.project();
    const s = this.screen;
    const size = this.nodeGeometry.getAttribute("aSize") as THREE.BufferAttribute;
    const scale = this.nodeMaterial.uniforms.uScale.value / this.renderer.getPixelRatio();
    let best: number | null = null, bestD = Infinity;
    for (let i = 0; i < this.index.count; i++) {
      const z = s[i * 3 + 2];
      if (z <= 0 || z >= 1) continue;
      const dx = s[i * 3] - x, dy = s[i * 3 + 1] - y;
      const d = dx * dx + dy * dy;
      if (d >= bestD || d > 4096) continue;
      const depth = this.camera.position.distanceTo(new THREE.Vector3().fromArray(this.placement!.positions, i * 3));
      const r = Math.max(6, (0.5 * size.getX(i) * scale) / depth);
      if (d <= r * r) {
        best = i;
        bestD = d;
      }
    }
    if (best !== null || !edges || !this.segs) return { node: best, segment: null };
    let seg: number | null = null, segD = 16;
    for (let i = 0; i < this.segs.count; i++) {
      const a = this.segs.from[i] * 3, b = this.segs.to[i] * 3;
      if (s[a + 2] <= 0 || s[b + 2] <= 0) continue;
      const ax = s[a], ay = s[a + 1], bx = s[b], by = s[b + 1];
      const vx = bx - ax, vy = by - ay;
      const t = Math.max(0, Math.min(1, ((x - ax) * vx + (y - ay) * vy) / (vx * vx + vy * vy || 1)));
      const dx = ax + t * vx - x, dy = ay + t * vy - y;
      const d = dx * dx + dy * dy;
      if (d < segD) {
        segD = d;
        seg = i;
      }
    }
    return { node: null, segment: seg };
  }

  private onMove(e: PointerEvent): void {
    if (e.buttons) return;
    const r = this.canvas.getBoundingClientRect();
    const pick = this.pick(e.clientX - r.left, e.clientY - r.top);
    this.setHover(pick.node, e.clientX - r.left, e.clientY - r.top, pick);
  }

  private setHover(node: number | null, x: number, y: number, pick: Pick): void {
    this.canvas.style.cursor = pick.node !== null || pick.segment !== null ? "pointer" : "grab";
    if (node !== this.hovered) {
      this.hovered = node;
      this.updateRings();
    }
    this.callbacks.hover(pick, x, y);
  }

  private onUp(e: PointerEvent): void {
    const down = this.pointerDown;
    this.pointerDown = null;
    if (!down || Math.hypot(e.clientX - down[0], e.clientY - down[1]) > 4) return; // a drag, not a click
    const r = this.canvas.getBoundingClientRect();
    this.callbacks.click(this.pick(e.clientX - r.left, e.clientY - r.top));
  }

  private updateRings(): void {
    if (!this.placement) return;
    const nodes = [this.selected, this.hovered].filter((n): n is number => n !== null);
    const pos = new Float32Array(nodes.length * 3), colour = new Float32Array(nodes.length * 3);
    const sizeAttr = this.nodeGeometry.getAttribute("aSize") as THREE.BufferAttribute;
    const size = new Float32Array(nodes.length), alpha = new Float32Array(nodes.length).fill(1);
    nodes.forEach((n, k) => {
      pos.set(this.placement!.positions.subarray(n * 3, n * 3 + 3), k * 3);
      colour.set(n === this.selected ? [1, 1, 1] : [0.55, 0.85, 1], k * 3);
      size[k] = Math.max(1.1, sizeAttr.getX(n) * 1.8);
    });
    this.ringGeometry.setAttribute("position", new THREE.BufferAttribute(pos, 3));
    this.ringGeometry.setAttribute("aColor", new THREE.BufferAttribute(colour, 3));
    this.ringGeometry.setAttribute("aSize", new THREE.BufferAttribute(size, 1));
    this.ringGeometry.setAttribute("aAlpha", new THREE.BufferAttribute(alpha, 1));
    this.requestRender();
  }

  private makeLabels(): void {
    this.labels.replaceChildren();
    this.labelEls = (this.index?.layers ?? []).map((layer) => {
      const el = document.createElement("span");
      el.textContent = layer.name;
      this.labels.appendChild(el);
      return el;
    });
  }

  private placeLabels(): void {
    if (!this.placement || !this.index) return;
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    const v = new THREE.Vector3();
    const order = this.labelEls.map((_, i) => i);
    const spots = order.map((i) => {
      const [cx, , cz] = this.placement!.centres[i];
      const layer = this.index!.layers[i];
      const half = Math.sqrt(layer.out_channels) / 2 + 1;
      v.set(cx, -half, cz).project(this.camera);
      return [((v.x + 1) / 2) * w, ((1 - v.y) / 2) * h, v.z] as const;
    });
    // Wider layers first; a label that would overlap one already placed is hidden.
    order.sort((a, b) => this.index!.layers[b].out_channels - this.index!.layers[a].out_channels || a - b);
    const placed: [number, number, number, number][] = [];
    for (const i of order) {
      const [x, y, z] = spots[i];
      const el = this.labelEls[i];
      const half = (this.index.layers[i].name.length * 6.7) / 2 + 4;
      const box: [number, number, number, number] = [x - half, y, x + half, y + 18];
      const visible = z < 1 && x > 0 && x < w && y > 0 && y < h
        && !placed.some((p) => box[0] < p[2] && p[0] < box[2] && box[1] < p[3] && p[1] < box[3]);
      el.style.display = visible ? "" : "none";
      if (visible) {
        el.style.transform = `translate(${x.toFixed(1)}px, ${y.toFixed(1)}px) translate(-50%, 4px)`;
        placed.push(box);
      }
    }
  }
}
