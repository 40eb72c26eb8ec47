/* The overlay: a second canvas over the page's canvas for what the hand tools draw while the
 * pointer moves (a brush stroke as it is painted, the polygon being drawn, the vertices of the
 * outline being edited), and the brush cursor (a circle of the brush's size). Drawing there
 * never redraws the photo and its masks: a brush move paints one segment, nothing else.
 *
 * The stored result of an edit is the server's (annotator/mask_edit.py): the overlay is a
 * preview, cleared once the edited mask comes back.
 */
import { PENDING, rgbCss } from "./colours.js";
import { displayMatrix, fromOriginal } from "./view.js";

const ERASE = "rgba(20, 20, 20, 1)";
const HANDLE_PX = 4; // half the side of a vertex handle, screen pixels

export class Overlay {
  /**
   * @param {HTMLCanvasElement} canvas the overlay canvas (over the page's, pointer events off).
   * @param {HTMLElement} cursor the brush cursor element.
   * @param {import("./state.js").PageState} S
   */
  constructor(canvas, cursor, S) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.cursor = cursor;
    this.S = S;
    this.pointer = null; // the last screen point the cursor was shown at, and whether it erased
    S.subscribe((topics) => {
      if (["image", "view", "tool", "polygon", "outline", "selection", "anns", "pending"].some((t) => topics.has(t))) this.draw();
      if (this.pointer && ["brush", "view", "tool"].some((t) => topics.has(t))) this.showCursor(...this.pointer);
    });
  }

  resize(w, h) {
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    this.draw();
  }

  clear() {
    this.ctx.setTransform(1, 0, 0, 1, 0, 0);
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
  }

  /** Redraw what the overlay holds now: the stroke so far, the polygon, the outline's vertices. */
  draw() {
    this.clear();
    const S = this.S;
    if (!S.img) return;
    if (S.stroke) {
      const p = S.stroke.points;
      for (let i = 0; i < p.length; i++) this.segment(p[Math.max(0, i - 1)], p[i], S.stroke.erase, S.stroke.radius);
    }
    if (S.tool === "polygon" && S.outline && S.selection.has(S.outline.id)) this.drawRings(S.outline.rings);
    if (S.polygon) this.drawPolygon(S.polygon);
  }

  /**
   * Paint one segment of a stroke, from original point a to b (a dab where a = b), with the
   * display transform: the only drawing a brush move does.
   */
  segment(a, b, erase, radius) {
    const S = this.S, ctx = this.ctx, dpr = window.devicePixelRatio || 1;
    const k = S.dw / S.W; // original -> display pixels
    ctx.setTransform(...displayMatrix(S, dpr));
    ctx.globalAlpha = 0.6;
    ctx.strokeStyle = ctx.fillStyle = erase ? ERASE : rgbCss(PENDING, 1);
    ctx.lineCap = "round";
    ctx.lineWidth = 2 * radius * k;
    ctx.beginPath();
    if (a[0] === b[0] && a[1] === b[1]) {
      ctx.arc(a[0] * k, a[1] * k, radius * k, 0, 2 * Math.PI);
      ctx.fill();
    } else {
      ctx.moveTo(a[0] * k, a[1] * k);
      ctx.lineTo(b[0] * k, b[1] * k);
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
  }

  screen() {
    const dpr = window.devicePixelRatio || 1;
    this.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return this.ctx;
  }

  /** The polygon being drawn: its vertices, its edges and the edge to the pointer. */
  drawPolygon(poly) {
    const S = this.S, ctx = this.screen();
    const pts = poly.points.map((p) => fromOriginal(S, p[0], p[1]));
    if (poly.pointer) pts.push(fromOriginal(S, poly.pointer[0], poly.pointer[1]));
    ctx.strokeStyle = poly.cut ? "#ff4d4d" : "#ffff00";
    ctx.lineWidth = 2;
    ctx.beginPath();
    pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
    ctx.fillStyle = "#ffffff";
    for (const [x, y] of pts.slice(0, poly.points.length)) ctx.fillRect(x - HANDLE_PX, y - HANDLE_PX, 2 * HANDLE_PX, 2 * HANDLE_PX);
  }

  /** The outline being edited: each ring (holes dashed) and its vertex handles. */
  drawRings(rings) {
    const S = this.S, ctx = this.screen();
    for (const ring of rings) {
      const pts = ring.points.map((p) => fromOriginal(S, p[0], p[1]));
      ctx.strokeStyle = ring.hole ? "#ff9900" : "#00e5ff";
      ctx.lineWidth = 1.5;
      ctx.setLineDash(ring.hole ? [5, 3] : []);
      ctx.beginPath();
      pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.closePath();
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = "#ffffff";
      ctx.strokeStyle = "#000000";
      ctx.lineWidth = 1;
      for (const [x, y] of pts) {
        ctx.fillRect(x - HANDLE_PX, y - HANDLE_PX, 2 * HANDLE_PX, 2 * HANDLE_PX);
        ctx.strokeRect(x - HANDLE_PX, y - HANDLE_PX, 2 * HANDLE_PX, 2 * HANDLE_PX);
      }
    }
  }

  /**
   * Show the brush cursor at screen point (sx, sy) with the brush's size (dashed red when it
   * erases: the eraser, or Ctrl held), or hide it (sx null).
   */
  showCursor(sx, sy, erase = false) {
    const S = this.S, c = this.cursor;
    this.pointer = sx == null ? null : [sx, sy, erase];
    if (sx == null || !S.img || (S.tool !== "brush" && S.tool !== "eraser")) { c.hidden = true; return; }
    const d = 2 * S.brushRadius * (S.dw / S.W) * S.z;
    c.hidden = false;
    c.classList.toggle("erase", S.tool === "eraser" || erase || !!(S.stroke && S.stroke.erase));
    Object.assign(c.style, { width: `${d}px`, height: `${d}px`, left: `${sx - d / 2}px`, top: `${sy - d / 2}px` });
  }
}
