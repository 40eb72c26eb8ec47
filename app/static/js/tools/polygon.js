/* The polygon tool. Clicks add the vertices of a polygon; Enter (or a click on its first vertex)
 * adds its pixels to what the hand tools edit (tools/brush.js `editTarget`: the pending mask,
 * the one selected annotation, or a new mask), Shift + Enter (Shift + click on the first
 * vertex) cuts them out: a hole, or a part removed. Backspace removes the last vertex, Esc
 * drops the polygon.
 *
 * With one annotation selected (and no mask pending) its outline is shown as rings of vertices
 * (outer boundaries and holes, from GET outline): drag a vertex to move it, press on an edge to
 * add a vertex there (and drag it), Alt + click (or right click) a vertex to delete it. Each
 * change of a ring is sent as the ring before and after (POST outline): only the pixels between
 * them change, holes and other parts stay; one undo step.
 */
import { hint } from "../keymap.js";
import { fromOriginal, screenToOriginal } from "../view.js";
import { editTarget } from "./brush.js";

const NEAR_PX = 7; // how close (screen pixels) a press must be to a vertex or an edge to grab it

/** Distance from point p to segment ab, and the parameter of the nearest point (2-D arrays). */
function toSegment(p, a, b) {
  const dx = b[0] - a[0], dy = b[1] - a[1], l2 = dx * dx + dy * dy;
  const t = l2 ? Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / l2)) : 0;
  return [Math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy), t];
}

export class PolygonTool {
  /** @param {object} ctx the page: {S, api, status, segment, history}. */
  constructor(ctx) {
    this.ctx = ctx;
    this.S = ctx.S;
    this.drag = null; // {ring, index, before: ring points as they were, moved}
    this.hover = null; // the outline's vertex under the pointer: {ring, index} (Backspace deletes it)
    ctx.S.subscribe((topics) => {
      if (["tool", "selection", "anns", "pending", "image"].some((t) => topics.has(t))) this.syncOutline();
    });
  }

  /** Fetch the outline of the one selected annotation when the tool edits it and it changed. */
  syncOutline() {
    const S = this.S;
    if (S.tool !== "polygon" || S.pending || S.selection.size !== 1) {
      if (S.outline) { S.outline = null; S.changed("outline"); }
      return;
    }
    const id = [...S.selection][0], ann = S.anns.get(id);
    if (!ann || (S.outline && S.outline.id === id && S.outline.counts === ann.rle.counts)) return;
    const counts = ann.rle.counts;
    if (S.outline) { S.outline = null; S.changed("outline"); } // the rings of the mask before: not shown, not dragged
    this.ctx.api.outline(id).then((r) => {
      const now = S.anns.get(id);
      if (!now || now.rle.counts !== counts || !S.selection.has(id)) return;
      S.outline = { id, counts, rings: r.rings };
      S.changed("outline");
    }).catch((e) => this.ctx.status("Error: outline: " + e.message));
  }

  /** The vertex (ring, index) or edge (ring, index of its first vertex, at t) near screen (sx, sy). */
  grab(sx, sy) {
    const S = this.S;
    if (!S.outline) return null;
    let best = null;
    S.outline.rings.forEach((ring, r) => {
      const pts = ring.points.map((p) => fromOriginal(S, p[0], p[1]));
      pts.forEach((p, i) => {
        const d = Math.hypot(p[0] - sx, p[1] - sy);
        if (d <= NEAR_PX && (!best || best.vertex === false || d < best.d)) best = { ring: r, index: i, vertex: true, d };
      });
      if (best && best.vertex) return;
      pts.forEach((p, i) => {
        const [d] = toSegment([sx, sy], p, pts[(i + 1) % pts.length]);
        if (d <= NEAR_PX && (!best || (!best.vertex && d < best.d))) best = { ring: r, index: i, vertex: false, d };
      });
    });
    return best;
  }

  /**
   * A press at screen (sx, sy): grab a vertex (drag it), press an edge (a vertex is added there),
   * delete a vertex (`remove`: Alt or the right button), or add a vertex to the polygon drawn.
   */
  down(sx, sy, { remove = false, shift = false } = {}) {
    const S = this.S;
    if (!S.current) return;
    const hit = S.polygon ? null : this.grab(sx, sy);
    const p = screenToOriginal(S, sx, sy);
    if (hit) {
      const ring = S.outline.rings[hit.ring], before = ring.points.map((q) => q.slice());
      if (remove) {
        if (!hit.vertex) return;
        if (ring.points.length <= 3) { this.ctx.status("A ring keeps 3 vertices: delete the annotation, or erase it."); return; }
        ring.points.splice(hit.index, 1);
        S.changed("outline");
        this.commit(hit.ring, before);
        return;
      }
      let index = hit.index;
      if (!hit.vertex) { index = hit.index + 1; ring.points.splice(index, 0, p); S.changed("outline"); }
      this.drag = { ring: hit.ring, index, before, moved: false, added: !hit.vertex };
      return;
    }
    if (remove) return;
    if (S.polygon && S.polygon.points.length >= 3) { // a click on the first vertex closes it
      const [fx, fy] = fromOriginal(S, ...S.polygon.points[0]);
      if (Math.hypot(fx - sx, fy - sy) <= NEAR_PX) { this.close(shift); return; }
    }
    if (!S.polygon) S.polygon = { key: S.current, points: [], pointer: null, cut: false };
    S.polygon.points.push(p);
    S.changed("polygon");
    if (S.polygon.points.length === 1) {
      this.ctx.status(`Polygon: click its vertices; ${hint("enter")} adds it, Shift + ${hint("enter")} cuts it out, ` +
        `Backspace removes the last vertex, ${hint("escape")} drops it.`);
    }
  }

  /** The pointer moved: a dragged vertex follows it, the polygon's last edge too. */
  move(sx, sy) {
    const S = this.S, p = screenToOriginal(S, sx, sy);
    if (this.drag) {
      S.outline.rings[this.drag.ring].points[this.drag.index] = p;
      this.drag.moved = true;
      S.changed("outline");
    } else if (S.polygon) {
      S.polygon.pointer = p;
      S.changed("polygon");
    } else {
      const hit = this.grab(sx, sy);
      this.hover = hit && hit.vertex ? hit : null;
    }
  }

  /** Backspace with no polygon drawn: delete the outline's vertex under the pointer. @returns {boolean} one was. */
  removeHovered() {
    const S = this.S, h = this.hover;
    if (!h || !S.outline || !S.outline.rings[h.ring]) return false;
    const [sx, sy] = fromOriginal(S, ...S.outline.rings[h.ring].points[h.index]);
    this.hover = null;
    this.down(sx, sy, { remove: true });
    return true;
  }

  /** The press ended: a dragged (or added) vertex is sent. */
  up() {
    const d = this.drag;
    this.drag = null;
    if (d && d.moved) this.commit(d.ring, d.before);
  }

  /** Send ring `r` of the outline as it was (`before`) and is now. */
  commit(r, before) {
    const S = this.S, ctx = this.ctx, outline = S.outline, ring = outline.rings[r];
    const after = ring.points.map((q) => q.slice());
    ctx.api.enqueue(async () => {
      let res;
      try {
        res = await ctx.api.moveOutline(outline.id, before, after, ring.hole);
      } catch (e) { // refused (e.g. nothing would be left): the rings drawn go back to the mask's
        if (S.outline === outline) { S.outline = null; this.syncOutline(); }
        throw e;
      }
      ctx.history.noteChange(res.history);
      if (S.outline === outline) outline.counts = res.annotation.rle.counts; // the rings drawn are the mask's now
      S.addAnnotation(res.annotation);
      S.changed("anns");
      ctx.status(`Outline of annotation ${outline.id} changed (now ${res.annotation.area} px); ${hint("undo")} undoes it.`);
    });
  }

  /** Backspace: the last vertex of the polygon drawn is removed. @returns {boolean} one was. */
  removeLast() {
    const S = this.S;
    if (!S.polygon) return false;
    S.polygon.points.pop();
    if (!S.polygon.points.length) S.polygon = null;
    S.changed("polygon");
    return true;
  }

  /** Drop the polygon drawn. @returns {boolean} there was one. */
  cancel() {
    const S = this.S;
    if (!S.polygon) return false;
    S.polygon = null;
    S.changed("polygon");
    return true;
  }

  /** Close the polygon drawn: its pixels added to what the hand tools edit, or cut out of it (`cut`). */
  close(cut) {
    const S = this.S, ctx = this.ctx, poly = S.polygon;
    if (!poly) return;
    if (poly.points.length < 3) { ctx.status("A polygon needs 3 or more vertices."); return; }
    S.polygon = null;
    S.changed("polygon");
    const target = editTarget(S), op = cut ? "polygon_cut" : "polygon_add", points = poly.points;
    if (target === "new" && cut) { ctx.status("Nothing to cut the polygon out of: select an annotation, or make a mask first."); return; }
    ctx.api.enqueue(async () => {
      if (poly.key !== S.current) return;
      if (typeof target === "number") {
        const r = await ctx.api.edit(target, op, points);
        ctx.history.noteChange(r.history);
        S.addAnnotation(r.annotation);
        S.changed("anns");
        ctx.status(`Polygon ${cut ? "cut out of" : "added to"} annotation ${target} (now ${r.annotation.area} px).`);
      } else {
        ctx.segment.showResult(await ctx.api.paint(poly.key, op, points), undefined, "edit");
      }
    });
  }
}
