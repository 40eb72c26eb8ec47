/* Undo and redo of the image's saved changes (accept, delete, merge, relabel, intersect,
 * subtract, re-prompt, hand edits, everything, find all): the history is the store's (POST
 * history), shared by every tab and user of the dataset, kept across reloads and restarts.
 * Ctrl + Z undoes a prompt step first while a mask is pending (see main.js).
 */
import { hint } from "./keymap.js";

export class HistoryControl {
  /** @param {object} ctx the page: {S, api, status, images}. */
  constructor(ctx) {
    this.ctx = ctx;
    this.S = ctx.S;
    ctx.S.subscribe((topics) => { if (topics.has("pending") || topics.has("polygon") || topics.has("image")) this.buttons(); });
  }

  /** Undo is enabled while there is a prompt step, a polygon vertex or a saved change to undo. */
  buttons() {
    const S = this.S, $ = this.ctx.$;
    const prompt = S.pending || S.prompt.points.length || S.prompt.box || S.polygon;
    $("ov-undo").disabled = !prompt && !(S.history && S.history.undoable);
    $("ov-redo").disabled = !(S.promptRedo || (S.history && S.history.redoable));
  }

  /** The depth the server answered ({undoable, redoable}), shown on the buttons. */
  show(depth) {
    const S = this.S, $ = this.ctx.$;
    S.history = { ...depth };
    this.buttons();
    $("ov-undo").title = $("ov-undo").title.replace(/ \[\d+ saved\]$/, "") + ` [${depth.undoable} saved]`;
  }

  /** A saved change was made here: one more step to undo, none to redo (or the server's depth). */
  noteChange(depth) {
    const h = this.S.history || { undoable: 0, redoable: 0 };
    this.show(depth || { undoable: h.undoable + 1, redoable: 0 });
  }

  undo() { this.travel("undo"); }

  redo() { this.travel("redo"); }

  travel(way) {
    const S = this.S, ctx = this.ctx, key = S.current;
    if (!key) return;
    ctx.api.enqueue(async () => {
      if (key !== S.current) return;
      const r = await ctx.api.history(key, way);
      this.show(r.history);
      if (!r.done) { ctx.status(way === "undo" ? "Nothing to undo on this image." : "Nothing to redo on this image."); return; }
      r.removed.forEach((id) => { S.anns.delete(id); S.selection.delete(id); });
      r.annotations.forEach((a) => S.addAnnotation(a));
      if (r.annotations.length) { // in the order of their ids, as the store lists them
        S.anns = new Map([...S.anns.entries()].sort((x, y) => x[0] - y[0]));
      }
      ctx.images.update(r.changed_images);
      S.changed("anns", "selection");
      const again = way === "undo" ? `${hint("redo")} redoes it` : `${hint("undo")} undoes it again`;
      ctx.status(`${way === "undo" ? "Undid" : "Redid"} ${r.kind} (${r.history.undoable} to undo, ${r.history.redoable} to redo); ${again}.`);
    });
  }
}
