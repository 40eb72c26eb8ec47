/* Moving between images: open one (its photo and annotations; the server computes its
 * embeddings meanwhile), the next or previous one, the next one not marked done. Prev, Next and
 * "Next not done" pass over images that cannot be read (marked in the list; the status line
 * names them); a file that failed is tried again once it changed (the server says so).
 */
import { imageUrl } from "./api.js";
import { PERF } from "./perf.js";
import { afterFrame } from "./render.js";
import { emptyPrompt } from "./state.js";
import { fit, resized } from "./view.js";

export class Navigator {
  /** @param {object} ctx the page: {S, api, status, stage, images (the image list)}. */
  constructor(ctx) {
    this.ctx = ctx;
    this.S = ctx.S;
  }

  /**
   * Show image `key`: the photo travels while the server runs SAM's encoder (open); timed
   * from `t0` (the input event's time) to the frame that shows it. `note` is added to the
   * status line once it shows.
   * @returns {Promise<boolean>} whether it opened (a file that cannot be read is marked
   *   unreadable in the image list, with its reason).
   */
  async open(key, t0, note = "") {
    const S = this.S, ctx = this.ctx;
    t0 = t0 || performance.now();
    if (!key) return false;
    ctx.status(`Opening ${key}…`);
    try {
      const img = new Image();
      img.src = imageUrl(key);
      // the photo travels while the server runs SAM's encoder (open); CLIP's pass follows there
      const decoded = img.decode().then(() => null, (e) => e);
      const info = await ctx.api.open(key); // its reason first (a corrupt file says so)
      const failed = await decoded;
      if (failed) throw failed;
      const previous = S.current;
      Object.assign(S, {
        current: key, img, W: info.width, H: info.height, dw: img.naturalWidth, dh: img.naturalHeight,
        pending: null, prompt: emptyPrompt(), suggestions: [], fitted: false,
        found: null, foundHover: null, token: null, labelsPending: false, stroke: null, polygon: null, outline: null,
      });
      ctx.history.show(info.history);
      S.selection.clear();
      S.anns.clear();
      info.annotations.forEach((a) => S.addAnnotation(a));
      this.fit();
      ctx.images.setUnreadable(info.unreadable || {});
      ctx.images.markCurrent(previous);
      S.changed("image", "anns", "selection", "pending", "suggestions", "found", "view");
      afterFrame((drawn, frame) => {
        PERF.switches.push({ key, t0, frame, cached: info.cached, server_ms: info.ready_ms });
        const how = info.cached ? "embeddings ready" : `embedded in ${(info.ready_ms / 1000).toFixed(2)} s`;
        ctx.status(`${key}: ${info.width}×${info.height}, ${how}; shown ${Math.round(frame - t0)} ms after the request. Click an object.` +
          (note ? " " + note : ""));
      });
      return true;
    } catch (e) {
      if (e.status === 422) ctx.images.markUnreadable(key, e.message);
      ctx.status(`Cannot open ${key}: ${e.message}`);
      return false;
    }
  }

  /**
   * Open the first of `keys` that opens, passing over the ones the list marks unreadable;
   * the status line names those skipped. @returns {Promise<boolean>} whether one opened.
   */
  async openFirst(keys, t0, none) {
    const skipped = [];
    for (const k of keys) {
      if (this.ctx.images.isUnreadable(k)) { skipped.push(k); continue; }
      const note = skipped.length ? `Skipped unreadable: ${skipped.join(", ")}.` : "";
      if (await this.open(k, t0, note)) return true;
      if (this.ctx.images.isUnreadable(k)) skipped.push(k); else return false; // another failure: said
    }
    this.ctx.status(none + (skipped.length ? ` Unreadable: ${skipped.join(", ")}.` : ""));
    return false;
  }

  /** Fit the image to the stage (without drawing). */
  fit() {
    const st = this.ctx.stage;
    fit(this.S, st.clientWidth, st.clientHeight);
    this.stageSize = [st.clientWidth, st.clientHeight];
  }

  /** The stage is now (w, h) CSS pixels: fit again, or keep the view's centre once zoomed or panned. */
  resized(w, h) {
    const [w0, h0] = this.stageSize || [0, 0];
    resized(this.S, w0, h0, w, h);
    this.stageSize = [w, h];
  }

  /** The image `delta` places after the one shown (wrapping around), passing over unreadable ones. */
  step(delta, t0) {
    const S = this.S, keys = S.images.map((i) => i.key), n = keys.length;
    if (!n) return Promise.resolve(false);
    const i = keys.indexOf(S.current), from = i < 0 ? (delta > 0 ? -1 : 0) : i;
    const order = [];
    for (let j = 1; j < n + (i < 0 ? 1 : 0); j++) order.push(keys[(((from + j * Math.sign(delta)) % n) + n) % n]);
    return this.openFirst(order, t0 || performance.now(), "No other image can be read.");
  }

  /** The next image not marked done, after the one shown (wrapping around), passing over unreadable ones. */
  nextNotDone() {
    const S = this.S, keys = S.images.map((i) => i.key), i = keys.indexOf(S.current);
    const order = keys.slice(i + 1).concat(keys.slice(0, i + 1)).filter((k) => k !== S.current);
    const todo = order.filter((k) => !S.images.find((im) => im.key === k).done);
    if (!todo.length) { this.ctx.status("Every image is marked done."); return Promise.resolve(false); }
    return this.openFirst(todo, performance.now(), "Every readable image is marked done.");
  }
}
