/* The toolbar: the tools (segment, select), mask visibility, colours (per class or per
 * annotation, kept in this browser) and opacity, the everything pass and its method list (the
 * find-all field has its own panel).
 */
import { saveMode, savedMode } from "../colours.js";

export class Toolbar {
  /** @param {object} ctx the page: {S, api, status, $, stage, images (the image list)}. */
  constructor(ctx) {
    this.ctx = ctx;
    this.S = ctx.S;
    ctx.$("ov-opacity").addEventListener("input", (e) => { this.S.opacity = e.target.value / 100; this.S.changed("view"); });
    const by = ctx.$("ov-colour-by");
    this.S.colourBy = savedMode();
    by.value = this.S.colourBy;
    by.addEventListener("change", () => { this.setColourBy(by.value); by.blur(); });
  }

  /** Colour masks per class ("class"), per annotation ("instance") or "auto"; kept in localStorage. */
  setColourBy(mode) {
    this.S.colourBy = mode;
    this.ctx.$("ov-colour-by").value = mode;
    saveMode(mode);
    this.S.changed("anns"); // the layer and the list's swatches repaint
  }

  /** The everything passes the server offers, as the method list's options. */
  setMethods(methods) {
    const sel = this.ctx.$("ov-method");
    methods.forEach((m) => {
      const o = document.createElement("option");
      o.value = m.id;
      o.textContent = m.title.split(":")[0];
      o.title = m.title;
      sel.appendChild(o);
    });
  }

  /** "segment", "select", "brush", "eraser" or "polygon". */
  setTool(tool) {
    const $ = this.ctx.$, S = this.S;
    const dropped = S.polygon && tool !== "polygon" ? S.polygon.points.length : 0;
    if (dropped) S.polygon = null; // a polygon half drawn is dropped (said below)
    S.tool = tool;
    for (const t of ["segment", "select", "brush", "eraser", "polygon"]) $(`ov-tool-${t}`).classList.toggle("on", tool === t);
    this.ctx.stage.classList.toggle("select", tool === "select");
    this.ctx.stage.classList.toggle("brush", tool === "brush" || tool === "eraser");
    if (tool !== "brush" && tool !== "eraser") this.ctx.overlay.showCursor(null);
    S.changed("tool", "polygon");
    const what = { "pending": "the pending mask", "new": "a new mask" };
    if (tool === "brush" || tool === "eraser" || tool === "polygon") {
      const target = S.pending ? "pending" : S.selection.size === 1 ? [...S.selection][0] : "new";
      this.ctx.status(`${tool[0].toUpperCase() + tool.slice(1)}: edits ${what[target] || `annotation ${target}`}.` +
        (dropped ? ` The polygon half drawn (${dropped} vertices) was dropped.` : ""));
    } else if (dropped) {
      this.ctx.status(`The polygon half drawn (${dropped} vertices) was dropped.`);
    }
  }

  toggleMasks() {
    const S = this.S;
    S.showMasks = !S.showMasks;
    this.ctx.$("ov-toggle-masks").textContent = S.showMasks ? "Hide masks" : "Show masks";
    S.changed("view");
  }

  /** Segment the whole image with the chosen pass; each instance becomes an annotation. */
  everything() {
    const S = this.S, ctx = this.ctx, $ = ctx.$;
    if (!S.current || S.busy) return;
    const method = $("ov-method").value;
    S.busy = true;
    $("ov-everything").disabled = true;
    const poll = ctx.api.pollProgress(`Segmenting everything (${method})…`);
    ctx.api.enqueue(async () => {
      try {
        const r = await ctx.api.everything(method);
        if (r.annotations.length) ctx.history.noteChange();
        r.annotations.forEach((a) => S.addAnnotation(a));
        ctx.images.update(r.changed_images);
        S.changed("anns");
        const repeats = r.already_annotated ? `; ${r.already_annotated} already annotated, not added again` : "";
        ctx.status(`Everything (${method}): ${r.patches} SAM patches → ${r.annotations.length} annotations (${r.how})${repeats} in ${r.seconds} s.`);
      } finally {
        clearInterval(poll);
        S.busy = false;
        $("ov-everything").disabled = false;
      }
    });
  }
}
