/* Moving between images: open one (its photo and annotations; the server computes its
 * embeddings meanwhile), the next or previous one, the next one not marked done.
 */
import { imageUrl } from "./api.js";
import { PERF } from "./perf.js";
import { afterFrame } from "./render.js";
import { emptyPrompt } from "./state.js";
import { fit } from "./view.js";

export class Navigator {
  /** @param {object} ctx the page: {S, api, status, stage, images (the image list)}. */
  constructor(ctx) {
    this.ctx = ctx;
    this.S = ctx.S;
  }

  /**
   * Show image `key`: the photo travels while the server runs SAM's encoder (open); timed
   * from `t0` (the input event's time) to the frame that shows it.
   */
  async open(key, t0) {
    const S = this.S, ctx = this.ctx;
    t0 = t0 || performance.now();
    if (!key) return;
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
      ctx.images.markCurrent(previous);
      S.changed("image", "anns", "selection", "pending", "suggestions", "found", "view");
      afterFrame((drawn, frame) => {
        PERF.switches.push({ key, t0, frame, cached: info.cached, server_ms: info.ready_ms });
        const how = info.cached ? "embeddings ready" : `embedded in ${(info.ready_ms / 1000).toFixed(2)} s`;
        ctx.status(`${key}: ${info.width}×${info.height}, ${how}; shown ${Math.round(frame - t0)} ms after the request. Click an object.`);
      });
    } catch (e) {
      ctx.status(`⚠ ${key}: ${e.message}`);
    }
  }

  /** Fit the image to the stage (without drawing). */
  fit() { fit(this.S, this.ctx.stage.clientWidth, this.ctx.stage.clientHeight); }

  /** The image `delta` places after the one shown (wrapping around). */
  step(delta, t0) {
    const S = this.S, keys = S.images.map((i) => i.key);
    if (!keys.length) return;
    const i = Math.max(0, keys.indexOf(S.current));
    this.open(keys[(i + delta + keys.length) % keys.length], t0 || performance.now());
  }

  /** The next image not marked done, after the one shown (wrapping around). */
  nextNotDone() {
    const S = this.S, keys = S.images.map((i) => i.key), i = keys.indexOf(S.current);
    const order = keys.slice(i + 1).concat(keys.slice(0, i + 1));
    const next = order.find((k) => !S.images.find((im) => im.key === k).done);
    if (next) this.open(next, performance.now()); else this.ctx.status("Every image is marked done.");
  }
}
