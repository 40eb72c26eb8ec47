/* The segment tool: a click is a point (left positive; right or Shift + left negative), a drag
 * a box; each goes to the server in original pixels and comes back as the pending mask with
 * its label suggestions (or, on a photo whose CLIP pass is still running, the labels follow).
 * SAM's candidates (C), undo, clear and accept act on the same prompt.
 */
import { hint } from "../keymap.js";
import { PERF } from "../perf.js";
import { afterFrame } from "../render.js";
import { emptyPrompt } from "../state.js";
import { toOriginal } from "../view.js";

export class SegmentTool {
  /** @param {object} ctx the page: {S, api, status, $, images (the image list)}. */
  constructor(ctx) {
    this.ctx = ctx;
    this.S = ctx.S;
    this.api = ctx.api;
    this.label = ctx.$("ov-label");
  }

  /** The label field shows the best suggestion unless the user chose one. */
  showBestLabel() {
    const S = this.S;
    if (S.suggestions.length && !S.labelLocked) this.ctx.labels.fill(S.suggestions[0].name);
  }

  /**
   * Show a prompt's answer: the mask, prompt and suggestions; fetch late labels; time the click.
   * @param {import("../api.js").PromptResponse} r
   * @param {number} [t0] the input event's time (performance.now() clock).
   * @param {string} [kind] "positive", "negative" or "box" (a click to time), "edit" (a hand edit).
   */
  showResult(r, t0, kind) {
    const S = this.S, arrived = performance.now();
    S.promptRedo = r.redoable || 0;
    S.prompt = r.prompt;
    S.pending = r.mask;
    S.token = r.token || null;
    S.labelsPending = !!(r.mask && r.labels_pending);
    S.suggestions = r.mask ? r.labels || [] : [];
    if (r.mask) this.showBestLabel();
    if (S.labelsPending && !S.labelLocked) this.label.value = ""; // not the last mask's label
    if (S.labelsPending) this.fetchLabels(S.current, r.token, t0);
    S.changed("pending", "suggestions");
    afterFrame((drawn, frame) => {
      if (kind && kind !== "edit" && t0) PERF.clicks.push({ kind, t0, arrived, drawn, frame, engine_ms: r.engine_ms });
      if (r.mask && kind === "edit") {
        const verb = r.replaces != null ? `${hint("enter")} replaces annotation ${r.replaces}` : `${hint("enter")} accepts`;
        this.ctx.status(`Mask: ${r.area} px, edited by hand; ${verb}; ${hint("undo")} undoes the edit; ` +
          `a click with the segment tool (${hint("tool-segment")}) refines it with SAM.`);
      } else if (r.mask) {
        const ms = t0 ? `; ${Math.round(frame - t0)} ms in all (engine ${Math.round(r.engine_ms || 0)} ms)` : "";
        const which = r.candidates > 1 ? ` candidate ${r.candidate} of ${r.candidates} (${hint("candidate")}: next),` : "";
        const next = r.replaces != null
          ? `Re-prompting annotation ${r.replaces}: click to refine it; ${hint("enter")} replaces it, ${hint("escape")} leaves it as it was.`
          : `${hint("enter")} accepts; click to refine; ${hint("candidate")} shows SAM's other masks.`;
        this.ctx.status(`Mask: ${r.area} px,${which} predicted IoU ${r.predicted_iou.toFixed(3)}${ms}. ${next}`);
      } else {
        this.ctx.status("No prompt. Click an object, or drag a box.");
      }
    });
  }

  /** The labels of the mask `token` once CLIP's pass is done (not queued: the next click must not wait). */
  fetchLabels(key, token, t0) {
    const S = this.S;
    S.labelsFetch = this.api.suggest(key).then((d) => {
      if (key !== S.current || d.token !== S.token || !S.pending) return; // another mask by now
      S.labelsPending = false;
      S.suggestions = d.labels;
      this.showBestLabel();
      S.changed("suggestions");
      if (t0 && d.token === token) requestAnimationFrame((frame) => PERF.labels.push({ t0, frame }));
    }).catch((e) => this.ctx.status("Error: labels: " + e.message));
  }

  /** A point at display pixel (dx, dy), positive or negative. */
  point(dx, dy, positive, t0) {
    const S = this.S;
    if (!S.current) return;
    const [x, y] = toOriginal(S, dx, dy);
    if (x < 0 || y < 0 || x > S.W || y > S.H) { this.ctx.status("Click inside the image."); return; }
    const key = S.current;
    this.api.enqueue(async () => {
      if (key !== S.current) return; // the user moved to another image meanwhile
      const r = await this.api.click(key, x, y, positive);
      if (key === S.current) this.showResult(r, t0, positive ? "positive" : "negative");
    });
  }

  /** A box [x0, y0, x1, y1] in original pixels. */
  box(box, t0) {
    const S = this.S, key = S.current;
    this.api.enqueue(async () => {
      if (key !== S.current) return;
      const r = await this.api.box(key, box);
      if (key === S.current) this.showResult(r, t0, "box");
    });
  }

  /** SAM's next candidate mask for the pending prompt (subpart / part / whole of a click). */
  candidate() {
    const S = this.S, key = S.current;
    if (!S.pending) { this.ctx.status("No mask to change: click an object first."); return; }
    this.api.enqueue(async () => {
      if (key !== S.current || !S.pending) return;
      this.showResult(await this.api.candidate(key));
    });
  }

  undo() {
    this.api.enqueue(async () => {
      const r = await this.api.undo();
      this.showResult(r);
      if (!r.mask) {
        afterFrame(() => this.ctx.status(`Prompt undone to nothing. ${hint("redo")} brings it back; ` +
          `${hint("undo")} again undoes the image's last saved change.`));
      }
    });
  }

  /** Bring back the prompt step undone last. */
  redo() { this.api.enqueue(async () => this.showResult(await this.api.redo())); }

  clear() {
    this.S.labelLocked = false;
    this.api.enqueue(async () => this.showResult(await this.api.clear()));
  }

  /** Store the pending mask with the label field's name (or, with labels still coming and nothing typed, the best). */
  accept() {
    const S = this.S, status = this.ctx.status;
    this.api.enqueue(async () => {
      if (!S.pending) { status("Nothing to accept: click an object first."); return; }
      if (S.labelsPending && !S.labelLocked) { // nothing typed: accept with the best label once it is here
        status("Accepting with the best label once the labels are here…");
        await S.labelsFetch; // the request fetchLabels made for this mask fills the label field
      }
      if (!this.label.value.trim()) {
        status(`Choose a label first: suggestions (${hint("pick-suggestion")}) or the label search (${hint("search-labels")}).`);
        this.label.focus();
        return;
      }
      const label = await this.ctx.labels.resolve(); // a class the user chose, never a stray text
      if (!label) return;
      const r = await this.api.accept(S.current, label);
      this.ctx.history.noteChange();
      S.addAnnotation(r.annotation);
      S.polygon = null; // a polygon half drawn was not part of the mask accepted
      S.promptRedo = 0;
      this.ctx.images.update(r.changed_images);
      Object.assign(S, {
        pending: null, prompt: emptyPrompt(), suggestions: [], token: null, labelsPending: false, labelLocked: false,
      });
      S.changed("anns", "pending", "suggestions", "polygon");
      status(`Saved annotation ${r.annotation.id} '${r.annotation.label}' (${r.annotation.area} px).`);
    });
  }
}
