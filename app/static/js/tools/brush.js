/* The brush and the eraser: a drag paints (or, with Ctrl held, the right button, or the eraser
 * tool, erases) a stroke of the brush's radius, in original image pixels, on what the hand
 * tools edit (see `editTarget`): the pending mask, else the one selected annotation, else a new
 * mask drawn by hand. The stroke is previewed on the overlay as the pointer moves and sent
 * once, on release: one undo step. `[` and `]` change the radius (the cursor shows it).
 * The keys follow X-AnyLabeling (Shift + B brush, Ctrl erases).
 */
import { hint } from "../keymap.js";
import { PERF } from "../perf.js";
import { screenToOriginal } from "../view.js";

export const RADIUS_MIN = 1, RADIUS_MAX = 500, RADIUS_STEP = 1.25;
const RADIUS_KEY = "ovsam-brush-radius"; // the radius is kept across reloads (localStorage)
const MAX_STROKE_POINTS = 4000; // the server takes 4096 a request: a longer stroke is sent in parts

/**
 * What a hand edit changes now: "pending" (the pending mask), an annotation id (the one
 * selected), or "new" (a mask drawn from nothing, pending once drawn).
 * @param {import("../state.js").PageState} S
 */
export function editTarget(S) {
  if (S.pending) return "pending";
  if (S.selection.size === 1) return [...S.selection][0];
  return "new";
}

export class BrushTool {
  /** @param {object} ctx the page: {S, api, status, segment, overlay, images}. */
  constructor(ctx) {
    this.ctx = ctx;
    this.S = ctx.S;
    const kept = Number(localStorage.getItem(RADIUS_KEY));
    if (kept >= RADIUS_MIN && kept <= RADIUS_MAX) this.S.brushRadius = kept;
  }

  /** Change the radius by `steps` steps of RADIUS_STEP (negative: smaller). */
  resize(steps) {
    const S = this.S;
    const r = S.brushRadius * RADIUS_STEP ** steps;
    S.brushRadius = Math.round(Math.min(RADIUS_MAX, Math.max(RADIUS_MIN, r)) * 2) / 2;
    localStorage.setItem(RADIUS_KEY, String(S.brushRadius));
    this.ctx.status(`Brush radius ${S.brushRadius} px (of the image); ${hint("brush-smaller")} / ${hint("brush-larger")} change it.`);
    S.changed("brush");
  }

  /** A press at screen (sx, sy): a stroke starts (erasing with `erase`). */
  down(sx, sy, erase) {
    const S = this.S;
    if (!S.current) return;
    const p = screenToOriginal(S, sx, sy);
    S.stroke = { key: S.current, target: editTarget(S), points: [p], erase: erase || S.tool === "eraser", radius: S.brushRadius };
    this.ctx.overlay.segment(p, p, S.stroke.erase, S.stroke.radius);
  }

  /** The pointer moved to screen (sx, sy) during a stroke; `t0` the event's time. */
  move(sx, sy, t0) {
    const S = this.S, st = S.stroke;
    if (!st) return;
    const p = screenToOriginal(S, sx, sy), last = st.points[st.points.length - 1];
    if (p[0] === last[0] && p[1] === last[1]) return;
    st.points.push(p);
    this.ctx.overlay.segment(last, p, st.erase, st.radius);
    PERF.brush.push({ t0, painted: performance.now() });
    if (st.points.length >= MAX_STROKE_POINTS) { // send this part; the stroke goes on from its last point
      this.send({ ...st, points: st.points.slice() });
      st.points = [p];
    }
  }

  /** The press ended: the stroke is sent. */
  up() {
    const st = this.S.stroke;
    if (!st) return;
    this.S.stroke = null;
    this.send(st);
  }

  send(st) {
    const S = this.S, ctx = this.ctx, op = st.erase ? "erase" : "brush";
    ctx.api.enqueue(async () => {
      try {
        if (st.key !== S.current) return;
        const id = typeof st.target === "number" ? st.target : null;
        if (id != null) {
          const r = await ctx.api.edit(id, op, st.points, st.radius);
          ctx.history.noteChange(r.history);
          S.addAnnotation(r.annotation);
          S.changed("anns");
          ctx.status(`${st.erase ? "Erased from" : "Painted on"} annotation ${id} (now ${r.annotation.area} px); ${hint("undo")} undoes it.`);
        } else {
          if (st.target === "pending" && !S.pending) return; // accepted or cleared meanwhile
          ctx.segment.showResult(await ctx.api.paint(st.key, op, st.points, st.radius), undefined, "edit");
        }
      } finally { // the preview goes, stored or refused (a refusal's reason is in the status line)
        if (!S.stroke) ctx.overlay.draw();
      }
    });
  }
}
