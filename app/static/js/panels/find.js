/* The find-all panel: name classes (free text or vocabulary names, comma-separated), find
 * every instance of them on the image; the candidates are drawn dashed and listed, each
 * accepted or rejected on its own (✓ / ✕, or a click on the image rejects the smallest one
 * under it), or all at once.
 */
import { colourOf, rgbCss } from "../colours.js";
import { hint } from "../keymap.js";
import { runsContain } from "../rle.js";
import { displayPixel } from "../view.js";

export class FindPanel {
  /** @param {object} ctx the page: {S, api, status, $, images (the image list)}. */
  constructor(ctx) {
    this.ctx = ctx;
    this.S = ctx.S;
    this.input = ctx.$("ov-find");
    this.button = ctx.$("ov-find-btn");
    ctx.S.subscribe((topics) => { if (topics.has("found")) this.render(); });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); this.input.blur(); this.find(); }
      else if (e.key === "Escape") this.input.blur();
    });
  }

  focus() { this.input.focus(); }

  /** Find all instances of the classes typed, with the chosen pass and threshold. */
  find() {
    const S = this.S, ctx = this.ctx, $ = ctx.$;
    if (!S.current || S.busy) return;
    if (S.findUnavailable) { ctx.status(S.findUnavailable); return; }
    const classes = this.input.value.trim();
    if (!classes) {
      ctx.status(`Name the classes to find, comma-separated (${hint("find-focus")}), e.g. car, person.`);
      this.input.focus();
      return;
    }
    const tv = $("ov-find-threshold").value.trim(), threshold = tv === "" ? null : Number(tv);
    const method = $("ov-method").value, key = S.current;
    S.busy = true;
    this.button.disabled = true;
    const poll = ctx.api.pollProgress(`Finding ${classes}…`);
    ctx.api.enqueue(async () => {
      try {
        const r = await ctx.api.find(key, classes, threshold, method);
        if (key !== S.current) return;
        S.setFound(key, r.found);
        S.changed("found");
        const names = r.classes.map((c) => c.name).join(", ");
        const free = r.classes.filter((c) => !c.in_vocabulary).map((c) => c.name);
        ctx.status(`Found ${r.found.length} (${names}) in ${r.seconds} s` +
          (r.reused_patches ? ", patches reused" : "") + (free.length ? `; free text: ${free.join(", ")}` : "") +
          (r.already_annotated ? `; ${r.already_annotated} already annotated, not offered` : "") +
          (r.found.length ? `. ${hint("enter")} accepts all; click one to reject it.` : ".") +
          (r.note ? ` (${r.note})` : ""));
      } finally {
        clearInterval(poll);
        S.busy = false;
        this.button.disabled = false;
      }
    });
  }

  render() {
    const S = this.S, $ = this.ctx.$;
    $("ov-found").hidden = !S.found;
    const list = $("ov-found-list");
    list.textContent = "";
    if (!S.found) return;
    $("ov-found-count").textContent = `${S.found.items.size} found`;
    for (const f of S.found.items.values()) {
      const li = document.createElement("li");
      li.dataset.index = f.index;
      li.innerHTML = '<span class="swatch"></span><span class="name"></span><span class="count"></span>' +
        '<button class="ok" title="Accept this one">✓</button><button class="no" title="Reject this one">✕</button>';
      li.querySelector(".swatch").style.background = rgbCss(colourOf(f.label), 1);
      li.querySelector(".name").textContent = f.label;
      li.querySelector(".count").textContent = f.score < 0.01 ? f.score.toPrecision(2) : f.score.toFixed(2);
      li.querySelector(".ok").addEventListener("click", () => this.accept([f.index]));
      li.querySelector(".no").addEventListener("click", () => this.reject([f.index]));
      li.addEventListener("mouseenter", () => { S.foundHover = f.index; S.changed("hover"); });
      li.addEventListener("mouseleave", () => { if (S.foundHover === f.index) { S.foundHover = null; S.changed("hover"); } });
      list.appendChild(li);
    }
  }

  /** Drop candidates from the page (rejected, or stored as annotations); no change is sent. */
  drop(indices) {
    const S = this.S;
    if (!S.found) return;
    indices.forEach((i) => S.found.items.delete(i));
    if (!S.found.items.size) S.found = null;
  }

  /** Reject candidates by index (all when none given). */
  reject(indices) {
    const S = this.S;
    if (!S.found) return;
    indices = indices || [...S.found.items.keys()];
    const names = indices.map((i) => S.found.items.get(i)).filter(Boolean).map((f) => f.label);
    this.drop(indices);
    S.changed("found");
    this.ctx.status(`Rejected ${names.length === 1 ? names[0] : names.length + " candidates"}.`);
  }

  /** Store candidates by index (all when none given) as annotations. */
  accept(indices) {
    const S = this.S, ctx = this.ctx;
    if (!S.found) return;
    const key = S.found.key;
    indices = indices || [...S.found.items.keys()];
    ctx.api.enqueue(async () => {
      const r = await ctx.api.findAccept(key, indices);
      if (key === S.current) {
        ctx.history.noteChange();
        r.annotations.forEach((a) => S.addAnnotation(a));
        this.drop(r.indices);
        S.changed("found", "anns");
      }
      ctx.images.update(r.changed_images);
      ctx.status(`Saved ${r.annotations.length} annotation(s)` + (S.found ? `; ${S.found.items.size} candidate(s) left.` : "."));
    });
  }

  /** The candidate under display pixel (dx, dy): the smallest one holding it; null if none. */
  hit(dx, dy) {
    const S = this.S, px = displayPixel(S, dx, dy);
    if (!S.found || !px) return null;
    let best = null;
    for (const f of S.found.items.values()) {
      if (runsContain(f.counts, S.dh, px[0], px[1]) && (!best || f.area < best.area)) best = f;
    }
    return best ? best.index : null;
  }
}
