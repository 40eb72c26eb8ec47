/* The pointer on the canvas: pan (middle drag, or Space + drag), zoom (wheel, at the cursor),
 * and presses handed to the tools: with the segment tool a click is a point (right or Shift +
 * click negative) and a drag longer than DRAG_PX a box; a click on a find-all candidate (no
 * mask pending) rejects it; with the select tool a click selects; the brush and eraser paint
 * strokes (right drag or Ctrl erases); the polygon tool adds vertices or edits an outline's.
 */
import { panFrom, screenToOriginal, toDisplay, zoomAt } from "./view.js";

const DRAG_PX = 5; // a press that moves further than this is a box, not a click

/**
 * Listen to the canvas's pointer.
 * @param {object} ctx the page: {S, canvas, stage, segment, select, found}.
 */
export function listenPointer(ctx) {
  const { S, canvas, stage } = ctx;
  const eventXY = (e) => { const r = canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };

  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("mousedown", (e) => {
    const [sx, sy] = eventXY(e);
    if (e.button === 1 || (e.button === 0 && S.space)) {
      S.pan = { sx, sy, tx: S.tx, ty: S.ty };
      stage.classList.add("panning");
      e.preventDefault();
      return;
    }
    if (S.tool === "brush" || S.tool === "eraser") {
      if (e.button === 0 || e.button === 2) ctx.brush.down(sx, sy, e.button === 2 || e.ctrlKey || e.metaKey);
      e.preventDefault();
      return;
    }
    if (S.tool === "polygon") {
      if (e.button === 0 || e.button === 2) ctx.polygon.down(sx, sy, { remove: e.altKey || e.button === 2, shift: e.shiftKey });
      e.preventDefault();
      return;
    }
    S.press = { sx, sy, button: e.button, shift: e.shiftKey };
  });
  canvas.addEventListener("mouseleave", () => ctx.overlay.showCursor(null));
  window.addEventListener("mousemove", (e) => {
    if (!S.img) return;
    const [sx, sy] = eventXY(e);
    if (S.pan) {
      panFrom(S, S.pan, sx - S.pan.sx, sy - S.pan.sy);
      S.changed("view");
      return;
    }
    if (S.tool === "brush" || S.tool === "eraser") {
      if (S.stroke) ctx.brush.move(sx, sy, e.timeStamp || performance.now());
      if (e.target === canvas) ctx.overlay.showCursor(sx, sy, e.ctrlKey || e.metaKey);
      return;
    }
    if (S.tool === "polygon") { ctx.polygon.move(sx, sy); return; }
    const p = S.press;
    if (p && p.button === 0 && S.tool === "segment" && (S.drag || Math.hypot(sx - p.sx, sy - p.sy) > DRAG_PX)) {
      const [x0, y0] = screenToOriginal(S, p.sx, p.sy), [x1, y1] = screenToOriginal(S, sx, sy);
      S.drag = { box: [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)] };
      S.changed("view");
    }
  });
  window.addEventListener("mouseup", (e) => {
    if (S.pan) { S.pan = null; stage.classList.remove("panning"); return; }
    if (S.stroke) { ctx.brush.up(); return; }
    if (S.tool === "polygon") { ctx.polygon.up(); return; }
    const p = S.press;
    S.press = null;
    if (!p || !S.img) return;
    const t0 = e.timeStamp || performance.now(); // the mouse event's own time
    if (S.drag) {
      const box = S.drag.box;
      S.drag = null;
      const cl = [Math.max(0, box[0]), Math.max(0, box[1]), Math.min(S.W, box[2]), Math.min(S.H, box[3])];
      if (cl[2] - cl[0] >= 1 && cl[3] - cl[1] >= 1) ctx.segment.box(cl, t0); else S.changed("view");
      return;
    }
    const [dx, dy] = toDisplay(S, ...eventXY(e));
    if (S.tool === "select") {
      if (p.button === 0) ctx.select.click(dx, dy, p.shift);
      return;
    }
    if (p.button === 0 && !p.shift && S.found && !S.pending) {
      const hit = ctx.found.hit(dx, dy);
      if (hit != null) { ctx.found.reject([hit]); return; }
    }
    if (p.button === 0) ctx.segment.point(dx, dy, !p.shift, t0);
    else if (p.button === 2) ctx.segment.point(dx, dy, false, t0);
  });
  canvas.addEventListener("wheel", (e) => {
    if (!S.img) return;
    e.preventDefault();
    const [sx, sy] = eventXY(e);
    zoomAt(S, sx, sy, e.deltaY);
    if (ctx.overlay.pointer) ctx.overlay.pointer = [sx, sy, e.ctrlKey || e.metaKey];
    S.changed("view");
  }, { passive: false });
}
