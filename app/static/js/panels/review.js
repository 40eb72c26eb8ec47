/* The review of predicted annotations (a machine's guesses: a bulk run, an import, Everything,
 * Find all): the review filter (all but rejected / predicted / accepted / rejected: what the
 * canvas and the annotation list show), the counts per state of the image and of the dataset,
 * the "reviewed" check box, and the review steps:
 *   step(±1)      select the next / previous prediction of the image and centre it; past the
 *                 image's last, open the next image (in the list's order) with predictions
 *   accept()      the selection accepted (POST review), then the image's next prediction selected
 *   reject()      the selection rejected (hidden unless the filter is "rejected"), likewise
 *   acceptImage() every prediction of the image accepted (POST review/image)
 * A fix is a hand edit of the selected prediction (brush, polygon, re-prompt): the server stores
 * it as accepted. Every step is one step of the image's history (Ctrl + Z undoes it).
 * The dataset's counts are the sum of the image list's entries; the shown image's entry follows
 * its annotations as the page holds them (so an edit that accepts a prediction counts at once).
 */
import { hint } from "../keymap.js";
import { afterFrame } from "../render.js";

const STATES = ["predicted", "accepted", "rejected"];

/** Annotations per state of `anns` (an iterable of annotations). @returns {{predicted, accepted, rejected}} */
export function countStates(anns) {
  const c = { predicted: 0, accepted: 0, rejected: 0 };
  for (const a of anns) c[a.state || "accepted"] += 1;
  return c;
}

function sameCounts(a, b) { return !!a && !!b && STATES.every((s) => a[s] === b[s]); }

function phrase(c) { return `${c.predicted} predicted, ${c.accepted} accepted, ${c.rejected} rejected`; }

export class ReviewPanel {
  /** @param {object} ctx the page: {S, api, $, status, nav, images, history, stage}. */
  constructor(ctx) {
    this.ctx = ctx;
    this.S = ctx.S;
    this.filter = ctx.$("ov-ann-filter");
    this.filter.addEventListener("change", () => { this.setFilter(this.filter.value); this.filter.blur(); });
    this.reviewed = ctx.$("ov-reviewed");
    this.reviewed.addEventListener("change", (e) => {
      const S = this.S, key = S.current, on = e.target.checked;
      if (!key) return;
      ctx.api.enqueue(async () => {
        const r = await ctx.api.reviewed(key, on);
        ctx.images.update(r.changed_images);
        ctx.status(on ? `${key} is reviewed (and done).` : `${key} is no longer marked reviewed (still done).`);
      });
    });
    ctx.S.subscribe((topics) => {
      if (topics.has("anns") || topics.has("image")) this.syncCurrent();
      if (topics.has("images") || topics.has("anns") || topics.has("image") || topics.has("selection")) this.render();
    });
  }

  /** Show the annotations of one state ("predicted", "accepted", "rejected") or all but rejected ("all"). */
  setFilter(f) {
    const S = this.S;
    S.reviewFilter = f;
    this.filter.value = f;
    for (const id of [...S.selection]) { const a = S.anns.get(id); if (a && !S.passesFilter(a)) S.selection.delete(id); }
    S.changed("anns", "selection", "review");
  }

  /** The shown image's list entry follows its annotations as the page holds them (counts, n, status). */
  syncCurrent() {
    const S = this.S, im = S.images.find((i) => i.key === S.current);
    if (!im || S.img === null) return;
    const counts = countStates(S.anns.values()), n = S.anns.size;
    if (sameCounts(counts, im.counts) && im.n === n) return;
    const status = im.status === "done" || im.status === "reviewed" ? im.status : n ? "in progress" : "to do";
    this.ctx.images.update([{ ...im, counts, n, status }]);
  }

  /** The counts shown: this image's per state, the dataset's per state, the reviewed box. */
  render() {
    const S = this.S, $ = this.ctx.$;
    const here = countStates(S.anns.values());
    $("ov-review-counts").textContent = S.current ? `This image: ${phrase(here)}` : "";
    const total = { predicted: 0, accepted: 0, rejected: 0 };
    for (const im of S.images) for (const s of STATES) total[s] += (im.counts && im.counts[s]) || 0;
    $("ov-review-totals").textContent = `Dataset: ${phrase(total)}`;
    const im = S.images.find((i) => i.key === S.current);
    this.reviewed.checked = !!(im && im.status === "reviewed");
    const sel = [...S.selection].map((id) => S.anns.get(id)).filter(Boolean);
    $("ov-review-accept").disabled = !sel.some((a) => a.state !== "accepted");
    $("ov-review-reject").disabled = !sel.some((a) => a.state !== "rejected");
    $("ov-review-all").disabled = !here.predicted;
  }

  /** The image's predictions, by id. */
  predictions() { return [...this.S.anns.values()].filter((a) => a.state === "predicted").sort((a, b) => a.id - b.id); }

  /**
   * Select the next (`dir` 1) or previous (-1) prediction after the selected annotation (by id)
   * and centre it; past the image's last (first), the next (previous) image of the list with
   * predictions, at its first (last); with none elsewhere, this image's from the other end.
   */
  step(dir) {
    const S = this.S, ctx = this.ctx;
    if (!S.current) return;
    if (S.pending || S.polygon) { ctx.status(`Accept (${hint("enter")}) or clear (${hint("escape")}) the pending mask first.`); return; }
    if (S.reviewFilter === "accepted" || S.reviewFilter === "rejected") this.setFilter("all");
    const preds = this.predictions(), at = S.selection.size === 1 ? [...S.selection][0] : null;
    const next = at === null ? (dir > 0 ? preds[0] : preds.at(-1))
      : dir > 0 ? preds.find((a) => a.id > at) : preds.filter((a) => a.id < at).at(-1);
    if (next) { this.show(next); return; }
    const keys = S.images.map((i) => i.key), i = keys.indexOf(S.current), n = keys.length, order = [];
    for (let j = 1; j < n; j++) order.push(S.images[(((i + j * dir) % n) + n) % n]);
    const other = order.find((im) => !im.unreadable && im.counts && im.counts.predicted > 0);
    if (other) {
      ctx.api.enqueue(async () => {
        if (!(await ctx.nav.open(other.key))) return;
        await new Promise((r) => afterFrame(r)); // after the open's own status line
        const p = this.predictions();
        if (p.length) this.show(dir > 0 ? p[0] : p.at(-1), `Opened ${other.key}, the next image with predictions. `);
      });
      return;
    }
    if (preds.length) { this.show(dir > 0 ? preds[0] : preds.at(-1), "No other image has predictions; from this one's start. "); return; }
    ctx.status(`No predictions left to review${S.images.some((im) => im.unreadable) ? " (unreadable images aside)" : ""}.`);
  }

  /** Select prediction `a` alone and centre the view on it (the zoom stays). */
  show(a, note = "") {
    const S = this.S, ctx = this.ctx, stage = ctx.stage;
    if (a.hidden) a.hidden = false;
    S.selection = new Set([a.id]);
    const [x, y, w, h] = a.bbox, cx = (x + w / 2) * (S.dw / S.W), cy = (y + h / 2) * (S.dh / S.H);
    S.tx = stage.clientWidth / 2 - cx * S.z;
    S.ty = stage.clientHeight / 2 - cy * S.z;
    S.moved = true;
    S.changed("anns", "selection", "view");
    const preds = this.predictions(), k = preds.findIndex((p) => p.id === a.id) + 1;
    const score = a.score == null ? "" : ` (${a.score.toFixed(2)})`;
    ctx.status(`${note}Prediction ${k} of ${preds.length} on this image: ${a.id} '${a.label}'${score}. ` +
      `${hint("review-accept")} accepts, ${hint("review-reject")} rejects; fix it with ${hint("tool-brush")}, ${hint("tool-polygon")} or ${hint("reprompt")} (a fix accepts it).`);
  }

  accept() { this.set("accepted"); }

  reject() { this.set("rejected"); }

  /** The selection to `state`; then the image's next prediction after it is selected. */
  set(state) {
    const S = this.S, ctx = this.ctx, key = S.current;
    const ids = [...S.selection].filter((id) => S.anns.has(id) && S.anns.get(id).state !== state);
    if (!key) return;
    if (!ids.length) {
      ctx.status(S.selection.size ? `The selection is ${state} already.` : `Select a prediction first (${hint("review-step")} steps to the next one).`);
      return;
    }
    const last = Math.max(...ids);
    ctx.api.enqueue(async () => {
      if (key !== S.current) return;
      const r = await ctx.api.review(ids, state, key);
      this.took(r);
      const next = this.predictions().find((a) => a.id > last) || this.predictions()[0];
      const done = `${state === "accepted" ? "Accepted" : "Rejected"} ${ids.join(", ")}; ${hint("undo")} undoes it. `;
      if (next) { this.show(next, done); return; }
      S.selection = new Set(state === "rejected" && S.reviewFilter !== "rejected" ? [] : ids);
      S.changed("selection");
      ctx.status(done + `No predictions left on this image: ${hint("review-step")} opens the next image with predictions.`);
    });
  }

  /** Accept every prediction of the image. */
  acceptImage() {
    const S = this.S, ctx = this.ctx, key = S.current;
    if (!key) return;
    ctx.api.enqueue(async () => {
      if (key !== S.current) return;
      const r = await ctx.api.reviewImage(key);
      this.took(r);
      ctx.status(r.annotations.length ? `Accepted the ${r.annotations.length} predictions of ${key}; ${hint("undo")} undoes it.`
        : `${key} has no predictions to accept.`);
    });
  }

  /** A review answer: the annotations as they are now (eye kept), the list's rows, the history depth. */
  took(r) {
    const S = this.S;
    for (const a of r.annotations) {
      const old = S.anns.get(a.id), hidden = !!(old && old.hidden);
      S.addAnnotation(a);
      S.anns.get(a.id).hidden = hidden;
    }
    if (r.annotations.length) S.anns = new Map([...S.anns.entries()].sort((x, y) => x[0] - y[0]));
    for (const id of [...S.selection]) { const a = S.anns.get(id); if (a && !S.passesFilter(a)) S.selection.delete(id); }
    this.ctx.history.show(r.history);
    this.ctx.images.update(r.changed_images);
    S.changed("anns", "selection");
  }
}
