/* The select tool: a click selects the annotation under it (Shift + click adds or removes one);
 * the selection is deleted, relabelled or merged.
 */
import { hint } from "../keymap.js";
import { runsContain } from "../rle.js";
import { displayPixel } from "../view.js";

export class SelectTool {
  /** @param {object} ctx the page: {S, api, status, $, images (the image list)}. */
  constructor(ctx) {
    this.ctx = ctx;
    this.S = ctx.S;
    this.api = ctx.api;
  }

  /** Select annotation `id` (null: none); `add` adds it to the selection, or removes it if there. */
  select(id, add) {
    const S = this.S;
    if (!add) S.selection.clear();
    if (id != null) {
      if (add && S.selection.has(id)) S.selection.delete(id); else S.selection.add(id);
    }
    S.changed("selection");
  }

  /** The visible annotation at display pixel (dx, dy), the one drawn on top first; null if none. */
  hitTest(dx, dy) {
    const S = this.S, px = displayPixel(S, dx, dy);
    if (!px) return null;
    const anns = [...S.anns.values()].reverse();
    const hit = anns.find((a) => S.shown(a) && runsContain(a.counts, S.dh, px[0], px[1]));
    return hit ? hit.id : null;
  }

  /** A click at display pixel (dx, dy) with the left button. */
  click(dx, dy, shift) { this.select(this.hitTest(dx, dy), shift); }

  label() { return this.ctx.$("ov-label").value.trim(); }

  delete() {
    const S = this.S, ids = [...S.selection];
    if (!ids.length) { this.ctx.status(`Select annotations first (${hint("tool-select")}, then click them).`); return; }
    this.api.enqueue(async () => {
      const r = await this.api.delete(ids);
      this.ctx.history.noteChange();
      ids.forEach((i) => S.anns.delete(i));
      S.selection.clear();
      this.ctx.images.update(r.changed_images);
      S.changed("anns", "selection");
      this.ctx.status(`Deleted ${ids.length} annotation(s).`);
    });
  }

  relabel() {
    const S = this.S, ids = [...S.selection];
    if (!ids.length || !this.label()) { this.ctx.status("Select annotations and choose a label first."); return; }
    this.api.enqueue(async () => {
      const label = await this.ctx.labels.resolve(); // a class the user chose, never a stray text
      if (!label) return;
      const r = await this.api.relabel(ids, label);
      this.ctx.history.noteChange();
      r.annotations.forEach((a) => { const old = S.anns.get(a.id); if (old) Object.assign(old, { label: a.label, score: a.score, state: a.state }); });
      S.changed("anns");
      this.ctx.status(`${ids.length} annotation(s) are now '${label}'.`);
    });
  }

  merge() { this.combine("merge"); }

  intersect() { this.combine("intersect"); }

  /** Merge (union) or intersect the selection into one annotation: the label the parts share,
   * the label field's when the user chose one, else ask (nothing is sent). */
  combine(kind) {
    const S = this.S, ids = [...S.selection], verb = kind === "merge" ? "Merge" : "Intersect";
    if (ids.length < 2) { this.ctx.status(`Select two or more annotations to ${kind} (shift + click adds).`); return; }
    const label = S.labelLocked ? this.label() : "";
    const labels = [...new Set(ids.map((i) => S.anns.get(i)?.label))];
    if (!label && labels.length > 1) { // the parts disagree: the user says which, nothing is merged yet
      const key = kind === "merge" ? ` (${hint("merge")})` : "", done = kind === "merge" ? "merged" : "intersected";
      this.ctx.status(`The selection is labelled ${labels.map((l) => `'${l}'`).join(", ")}: type or pick the ` +
        `${done} label, then ${verb}${key}.`);
      this.ctx.$("ov-label").focus();
      return;
    }
    this.api.enqueue(async () => {
      const chosen = label ? await this.ctx.labels.resolve() : "";
      if (chosen === null) return;
      const r = await this.api[kind](ids, chosen || label);
      this.ctx.history.noteChange();
      r.removed.forEach((i) => S.anns.delete(i));
      S.addAnnotation(r.annotation);
      S.selection = new Set([r.annotation.id]);
      this.ctx.images.update(r.changed_images);
      S.changed("anns", "selection");
      const done = kind === "merge" ? "Merged" : "Intersected";
      this.ctx.status(`${done} ${ids.join(", ")} into annotation ${r.annotation.id} ('${r.annotation.label}', ${r.annotation.area} px).`);
    });
  }

  /** Cut the other selected annotations out of the first one selected (a hole, a part removed). */
  subtract() {
    const S = this.S, ids = [...S.selection];
    if (ids.length < 2) {
      this.ctx.status("Select the annotation to cut, then shift + click the ones to cut out of it.");
      return;
    }
    this.api.enqueue(async () => {
      const r = await this.api.subtract(ids);
      this.ctx.history.noteChange();
      S.addAnnotation(r.annotation);
      S.selection = new Set([r.annotation.id]);
      this.ctx.images.update(r.changed_images);
      S.changed("anns", "selection");
      this.ctx.status(`Cut ${ids.slice(1).join(", ")} out of annotation ${ids[0]} (now ${r.annotation.area} px).`);
    });
  }
}
