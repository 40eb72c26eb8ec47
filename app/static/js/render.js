/* Drawing the canvas: the photo, accepted masks (a colour per class or per annotation:
 * colours.js), find-all candidates, the pending mask, then screen-space labels (each inside its
 * mask, moved off the ones already placed), the box and the points. Predicted annotations (a
 * machine's guess, to review) are drawn lighter with a dashed outline, rejected ones (shown only
 * under the review filter "rejected") grey with a dotted outline; S.shown(a) says which are drawn.
 *
 * Masks are painted into layers of the displayed size (one per kind) and drawn scaled with the
 * view; a layer is repainted only when its masks changed (state topics), the canvas redrawn
 * once per change.
 */
import { colourOf, instanceColour, PENDING, perInstance, rgbCss } from "./colours.js";
import { paintRuns, rleCounts } from "./rle.js";
import { displayMatrix, fromOriginal } from "./view.js";

const BACKGROUND = "#1f1f23";
const REJECTED = [150, 150, 150]; // a rejected annotation's grey
const GUESS_ALPHA = 0.5; // a predicted or rejected mask's fill, relative to the opacity
const DRAWN_ON = ["image", "anns", "selection", "hover", "pending", "found", "view", "colours"];

/** A layer canvas of the displayed size (resized when the image's size differs). */
function sized(layer, w, h) {
  if (layer.width !== w || layer.height !== h) { layer.width = w; layer.height = h; }
  return layer.getContext("2d");
}

/**
 * A point inside a mask (display pixels): the middle of its longest vertical run within one
 * column (the mask's thickest part, for most shapes). O(runs).
 * @param {number[]} counts run lengths (column-major, zeros first) of an h-high mask.
 * @returns {number[] | null} [dx, dy] (pixel centre), null for an empty mask.
 */
export function labelAnchor(counts, h) {
  let pos = 0, best = 0, at = null;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i];
    if (i & 1) {
      let start = pos;
      while (start < pos + n) { // split the run at column ends
        const x = (start / h) | 0, end = Math.min(pos + n, (x + 1) * h);
        if (end - start > best) { best = end - start; at = [x + 0.5, (start - x * h + end - x * h) / 2]; }
        start = end;
      }
    }
    pos += n;
  }
  return at;
}

function overlaps(a, b) { return a[0] < b[0] + b[2] && b[0] < a[0] + a[2] && a[1] < b[1] + b[3] && b[1] < a[1] + a[3]; }

export class Renderer {
  /**
   * @param {HTMLCanvasElement} canvas the page's canvas (CSS size = its stage's).
   * @param {import("./state.js").PageState} S the page state; redraws on its changes.
   */
  constructor(canvas, S) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.S = S;
    this.accLayer = document.createElement("canvas");
    this.guessLayer = document.createElement("canvas"); // predicted and rejected masks, drawn lighter
    this.pendLayer = document.createElement("canvas");
    this.foundLayer = document.createElement("canvas");
    this.pendPixels = null;
    this.accDirty = true;
    this.foundDirty = true;
    /** @type {{id: number, text: string, box: number[]}[]} the labels drawn last: [x, y, w, h] CSS px */
    this.labelBoxes = [];
    this.anchors = new WeakMap(); // a mask's run lengths -> its label anchor
    S.subscribe((topics) => this.onChange(topics));
  }

  onChange(topics) {
    if (topics.has("image") || topics.has("anns") || topics.has("colours")) this.accDirty = true;
    if (topics.has("image") || topics.has("found") || topics.has("colours")) this.foundDirty = true;
    if (topics.has("pending") && this.S.pending) this.paintPending(this.S.pending);
    if (DRAWN_ON.some((t) => topics.has(t))) this.draw();
  }

  /** The canvas's backing store follows its CSS size x devicePixelRatio. */
  resize(w, h) {
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
  }

  /** The colour of annotation `a` now (per class or per annotation: colours.js). */
  colour(a) { return this.each ? instanceColour(a.id) : colourOf(a.label); }

  rebuildAccepted() {
    const S = this.S;
    const lctx = sized(this.accLayer, S.dw, S.dh), gctx = sized(this.guessLayer, S.dw, S.dh);
    const im = lctx.createImageData(S.dw, S.dh), guess = gctx.createImageData(S.dw, S.dh);
    for (const a of S.anns.values()) {
      if (!S.shown(a)) continue;
      const st = a.state || "accepted";
      paintRuns(st === "accepted" ? im.data : guess.data, S.dw, S.dh, a.counts, st === "rejected" ? REJECTED : this.colour(a));
    }
    lctx.putImageData(im, 0, 0);
    gctx.putImageData(guess, 0, 0);
    this.accDirty = false;
  }

  rebuildFound() {
    const S = this.S;
    const lctx = sized(this.foundLayer, S.dw, S.dh);
    const im = lctx.createImageData(S.dw, S.dh);
    for (const f of S.found.items.values()) paintRuns(im.data, S.dw, S.dh, f.counts, colourOf(f.label));
    lctx.putImageData(im, 0, 0);
    this.foundDirty = false;
  }

  paintPending(mask) {
    const S = this.S;
    const lctx = sized(this.pendLayer, S.dw, S.dh);
    // one pixel buffer per image size, cleared per click rather than allocated (a click's hot path)
    if (!this.pendPixels || this.pendPixels.width !== S.dw || this.pendPixels.height !== S.dh) {
      this.pendPixels = lctx.createImageData(S.dw, S.dh);
    } else {
      this.pendPixels.data.fill(0);
    }
    paintRuns(this.pendPixels.data, S.dw, S.dh, rleCounts(mask.rle.counts), PENDING);
    lctx.putImageData(this.pendPixels, 0, 0);
  }

  strokeOutline(outline, css, width) {
    const ctx = this.ctx;
    ctx.beginPath();
    for (const poly of outline) {
      for (let i = 0; i < poly.length; i += 2) {
        const x = poly[i] + 0.5, y = poly[i + 1] + 0.5;
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      }
      ctx.closePath();
    }
    ctx.strokeStyle = css;
    ctx.lineWidth = width / this.S.z;
    ctx.stroke();
  }

  /** Draw everything now. */
  draw() {
    const S = this.S, ctx = this.ctx, dpr = window.devicePixelRatio || 1;
    const each = perInstance(S.colourBy || "auto", S.anns.values());
    if (each !== this.each) { this.each = each; this.accDirty = true; }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = BACKGROUND;
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    if (!S.img) return;
    ctx.setTransform(...displayMatrix(S, dpr));
    ctx.imageSmoothingEnabled = S.z < 1;
    ctx.drawImage(S.img, 0, 0, S.dw, S.dh);
    ctx.imageSmoothingEnabled = false; // masks stay crisp at any zoom
    this.drawMasks();
    this.drawDecorations(dpr);
  }

  drawMasks() {
    const S = this.S, ctx = this.ctx;
    if (S.showMasks) {
      if (this.accDirty) this.rebuildAccepted();
      ctx.globalAlpha = S.opacity;
      ctx.drawImage(this.accLayer, 0, 0);
      ctx.globalAlpha = S.opacity * GUESS_ALPHA;
      ctx.drawImage(this.guessLayer, 0, 0);
      ctx.globalAlpha = 1;
      for (const a of S.anns.values()) {
        if (!S.shown(a)) continue;
        const sel = S.selection.has(a.id), hov = S.hover === a.id, st = a.state || "accepted";
        const own = st === "rejected" ? rgbCss(REJECTED, 0.95) : rgbCss(this.colour(a), 0.95);
        ctx.setLineDash(st === "predicted" ? [6 / S.z, 4 / S.z] : st === "rejected" ? [2 / S.z, 3 / S.z] : []);
        this.strokeOutline(a.outline, sel ? "#ffffff" : hov ? "#ffff00" : own, sel || hov ? 3 : st === "accepted" ? 1.5 : 2);
      }
      ctx.setLineDash([]);
    } else {
      for (const id of S.selection) { const a = S.anns.get(id); if (a) this.strokeOutline(a.outline, "#ffffff", 3); }
    }
    if (S.found) {
      if (this.foundDirty) this.rebuildFound();
      ctx.globalAlpha = 0.55;
      ctx.drawImage(this.foundLayer, 0, 0);
      ctx.globalAlpha = 1;
      ctx.setLineDash([6 / S.z, 4 / S.z]);
      for (const f of S.found.items.values()) {
        const hov = S.foundHover === f.index;
        this.strokeOutline(f.outline, hov ? "#ffff00" : rgbCss(colourOf(f.label), 1), hov ? 3 : 2);
      }
      ctx.setLineDash([]);
    }
    if (S.pending) {
      ctx.globalAlpha = 0.5;
      ctx.drawImage(this.pendLayer, 0, 0);
      ctx.globalAlpha = 1;
      this.strokeOutline(S.pending.outline, rgbCss(PENDING, 1), 2);
    }
  }

  /** Screen-space decorations: the annotations' ids and labels, the box, the points. */
  drawDecorations(dpr) {
    const S = this.S, ctx = this.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    this.labelBoxes = [];
    if (S.showMasks) this.drawLabels();
    const box = S.drag ? S.drag.box : S.prompt.box;
    if (box) {
      const [x0, y0] = fromOriginal(S, box[0], box[1]), [x1, y1] = fromOriginal(S, box[2], box[3]);
      ctx.strokeStyle = "#ffff00";
      ctx.lineWidth = 2;
      ctx.setLineDash(S.drag ? [6, 4] : []);
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      ctx.setLineDash([]);
    }
    S.prompt.points.forEach((p, i) => {
      const [x, y] = fromOriginal(S, p[0], p[1]);
      ctx.beginPath();
      ctx.arc(x, y, 5.5, 0, 2 * Math.PI);
      ctx.fillStyle = S.prompt.labels[i] === 1 ? "#16c60c" : "#e81123";
      ctx.fill();
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 1.5;
      ctx.stroke();
    });
  }

  /**
   * Each annotation's "id label" inside its mask (at labelAnchor), the larger masks first; a
   * label that would cover one already placed moves down or up a line at a time (8 tries),
   * else it is left out. What was drawn is kept in `labelBoxes` (CSS pixels).
   */
  drawLabels() {
    const S = this.S, ctx = this.ctx, LINE = 15;
    ctx.font = "12px system-ui, sans-serif";
    ctx.lineWidth = 3;
    ctx.textBaseline = "middle";
    const anns = [...S.anns.values()].filter((a) => S.shown(a)).sort((a, b) => b.area - a.area);
    const vw = this.canvas.clientWidth || this.canvas.width, vh = this.canvas.clientHeight || this.canvas.height;
    for (const a of anns) {
      if (!this.anchors.has(a.counts)) this.anchors.set(a.counts, labelAnchor(a.counts, S.dh));
      const anchor = this.anchors.get(a.counts);
      if (!anchor) continue;
      const text = `${a.id} ${a.label}`, w = ctx.measureText(text).width + 6;
      const cx = anchor[0] * S.z + S.tx, cy = anchor[1] * S.z + S.ty;
      let box = null;
      for (const k of [0, 1, -1, 2, -2, 3, -3, 4, -4]) {
        const x = Math.min(Math.max(0, cx - w / 2), vw - w), y = Math.min(Math.max(0, cy - LINE / 2 + k * LINE), vh - LINE);
        const b = [x, y, w, LINE];
        if (!this.labelBoxes.some((o) => overlaps(o.box, b))) { box = b; break; }
      }
      if (!box) continue;
      this.labelBoxes.push({ id: a.id, text, box });
      ctx.strokeStyle = "rgba(0,0,0,0.85)";
      ctx.strokeText(text, box[0] + 3, box[1] + LINE / 2);
      ctx.fillStyle = "#fff";
      ctx.fillText(text, box[0] + 3, box[1] + LINE / 2);
    }
    ctx.textBaseline = "alphabetic";
  }

  /**
   * What the layers of saved masks hold (for tests): their painted pixels (accepted, predicted
   * or rejected alike) and size.
   * @returns {{painted: number, size: number[]}}
   */
  acceptedLayer() {
    const L = this.accLayer, G = this.guessLayer;
    if (!L.width || !L.height) return { painted: 0, size: [L.width, L.height] };
    const d = L.getContext("2d").getImageData(0, 0, L.width, L.height).data;
    const g = G.width === L.width && G.height === L.height ? G.getContext("2d").getImageData(0, 0, L.width, L.height).data : null;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) n += d[i] > 0 || (g !== null && g[i] > 0);
    return { painted: n, size: [L.width, L.height] };
  }
}

/** Call done(drawn, frame) once the frame showing what was just drawn is painted (performance.now()). */
export function afterFrame(done) {
  const drawn = performance.now();
  requestAnimationFrame(() => setTimeout(() => done(drawn, performance.now()), 0));
}
