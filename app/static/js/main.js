/* The annotation page's canvas tool: native ES modules, no build step.
 *
 * The image travels once per image; a click sends one point (or a box) to /ovsam/api and gets
 * back only the new mask (COCO compressed RLE at the displayed resolution, its outline, labels
 * and scores). Everything is drawn here: the photo, accepted masks (a colour per class), the
 * pending mask, points and box, with zoom around the cursor and pan.
 *
 * `mount(root)` starts the tool on the page's markup (static/annotator.html) under `root`.
 * window.OVSAM = {mount, snapshot, timeRedraw, reload, keymap, rleCounts, paintRuns, runsContain}: `snapshot()` is
 * a plain copy of the mounted page's state (state.js) for tests and benchmarks;
 * window.OVSAM_PERF holds the timing marks (perf.js).
 */
import { Api } from "./api.js";
import { applyHints, hint, KEYMAP, listenKeys } from "./keymap.js";
import { Navigator } from "./navigate.js";
import { AnnotationList } from "./panels/annotations.js";
import { FindPanel } from "./panels/find.js";
import { HistoryControl } from "./history.js";
import { Overlay } from "./overlay.js";
import { HelpOverlay } from "./panels/help.js";
import { ImageList } from "./panels/images.js";
import { LabelPanel } from "./panels/labels.js";
import { ClassPanel } from "./panels/classes.js";
import { ReviewPanel } from "./panels/review.js";
import { Toolbar } from "./panels/toolbar.js";
import { listenPointer } from "./pointer.js";
import { Renderer } from "./render.js";
import { paintRuns, rleCounts, runsContain } from "./rle.js";
import { PageState, tabSession } from "./state.js";
import { BrushTool } from "./tools/brush.js";
import { PolygonTool } from "./tools/polygon.js";
import { SegmentTool } from "./tools/segment.js";
import { SelectTool } from "./tools/select.js";

let mounted = null; // {S, render} of the last page mounted

/** What the keys (with the event) and the buttons (without) do, by action name (keymap.js, data-act). */
function actions(ctx) {
  const { S, nav, segment, select, found, labels, toolbar, help, brush, polygon, history, review } = ctx;
  const t0 = (e) => (e ? e.timeStamp || performance.now() : undefined);
  return {
    prev: (e) => nav.step(-1, t0(e)),
    next: (e) => nav.step(1, t0(e)),
    "next-todo": () => nav.nextNotDone(),
    "tool-segment": () => toolbar.setTool("segment"),
    "tool-select": () => toolbar.setTool("select"),
    "tool-brush": () => toolbar.setTool("brush"),
    "tool-eraser": () => toolbar.setTool("eraser"),
    "tool-polygon": () => toolbar.setTool("polygon"),
    "brush-smaller": () => brush.resize(-1),
    "brush-larger": () => brush.resize(1),
    candidate: () => segment.candidate(),
    reprompt: () => {
      const id = S.selection.size === 1 ? [...S.selection][0] : null;
      if (id == null) { ctx.status("Select one annotation to re-prompt (V, then click it)."); return; }
      const key = S.current;
      ctx.api.enqueue(async () => {
        if (key !== S.current) return;
        const r = await ctx.api.reprompt(key, id);
        S.selection = new Set();
        toolbar.setTool("segment");
        S.changed("selection");
        segment.showResult(r);
      });
    },
    undo: () => { // the polygon's last vertex, else a prompt step, else the image's last saved change
      if (S.stroke) { ctx.status("Finish the stroke first (release the button), then undo it."); return; }
      if (polygon.removeLast()) return;
      if (S.pending || S.prompt.points.length || S.prompt.box) segment.undo();
      else history.undo();
    },
    redo: () => {
      if (S.stroke) return;
      if (S.promptRedo) { segment.redo(); return; }
      if (S.pending) { ctx.status(`Redo is for saved changes: accept (${hint("enter")}) or clear (${hint("escape")}) the pending mask first.`); return; }
      history.redo();
    },
    clear: () => segment.clear(),
    fit: () => { nav.fit(); S.changed("view"); },
    everything: () => toolbar.everything(),
    "toggle-masks": () => toolbar.toggleMasks(),
    help: () => help.toggle(),
    accept: () => segment.accept(),
    relabel: () => select.relabel(),
    merge: () => select.merge(),
    subtract: () => select.subtract(),
    intersect: () => select.intersect(),
    delete: (e) => { // Backspace with the polygon tool: a vertex (the polygon's last, else the one under the pointer)
      if (e && e.key === "Backspace" && S.tool === "polygon") {
        if (!polygon.removeLast() && !polygon.removeHovered()) {
          ctx.status("Backspace removes the polygon's last vertex, or the outline's vertex under the pointer; Delete deletes the selection.");
        }
        return;
      }
      select.delete();
    },
    "review-step": (e) => review.step(e && e.shiftKey ? -1 : 1),
    "review-next": () => review.step(1),
    "review-prev": () => review.step(-1),
    "review-accept": () => review.accept(),
    "review-reject": () => review.reject(),
    "review-accept-image": () => review.acceptImage(),
    find: () => found.find(),
    "found-accept": () => found.accept(),
    "found-reject": () => found.reject(),
    "find-focus": () => found.focus(),
    "search-labels": () => labels.focus(),
    "pick-suggestion": (e) => labels.pickSuggestion(Number(e.key)),
    "pick-class": (e) => ctx.classes.pickKey(e.key),
    "pan-key": (e, down) => { S.space = down; },
    escape: () => {
      if (help.open) help.toggle(false);
      else if (polygon.cancel()) return;
      else if (S.pending || S.prompt.points.length || S.prompt.box) segment.clear();
      else if (S.found) found.reject();
      else select.select(null, false);
    },
    enter: (e) => {
      if (S.polygon) polygon.close(!!(e && e.shiftKey));
      else if (S.pending) segment.accept();
      else if (["brush", "eraser", "polygon"].includes(S.tool)) { // nothing to close or accept: no relabel by surprise
        ctx.status(`Nothing to accept. ${hint("enter")} closes a polygon or accepts a pending mask; relabel with the Relabel button or the select tool (${hint("tool-select")}).`);
      }
      else if (S.found) found.accept();
      else if (S.selection.size) select.relabel();
      else segment.accept();
    },
  };
}

/** Load the start state, then open the image the tab (or the store) worked on last. */
async function start(ctx) {
  const { S, api, $ } = ctx;
  try {
    const st = await api.state();
    ctx.toolbar.setMethods(st.methods);
    ctx.labels.setVocabulary(st.vocab_size, st.has_labels ? null : "CLIP is not loaded");
    ctx.images.set(st.images);
    ctx.classes.setList(st.classes);
    ctx.classes.load().catch((e) => ctx.status("Error: " + e.message));
    S.findUnavailable = st.find_unavailable;
    // what runs other than asked, kept on screen (never overwritten by the status line)
    const notes = [...(st.notes || [])];
    if (!st.has_labels) notes.unshift(`Label suggestions and Find all are off: ${st.labels_unavailable}`);
    const notice = $("ov-notice");
    notice.textContent = notes.map((n) => "Note: " + n).join("\n");
    notice.hidden = !notes.length;
    if (st.find_unavailable) { // greyed, saying why (T or a click on it still says it in the status line)
      $("ov-find-btn").title = $("ov-find").title = st.find_unavailable;
      $("ov-find-btn").classList.add("off");
      $("ov-find").classList.add("off");
      $("ov-find").placeholder = "Find all: needs CLIP";
    }
    if (!(await ctx.nav.open(st.current))) { // unreadable: the first image after it that opens
      const keys = st.images.map((i) => i.key), i = keys.indexOf(st.current);
      await ctx.nav.openFirst(keys.slice(i + 1).concat(keys.slice(0, i)), performance.now(), "No image of the folder can be read.");
    }
  } catch (e) {
    ctx.status("Error: " + e.message);
  }
}

/**
 * Read the store's state again and reopen the image shown (after an import from the panel
 * below the canvas): the image list's counts, the classes, the image's annotations.
 */
export async function reload() {
  if (!mounted) return;
  const ctx = mounted.ctx;
  try {
    const st = await ctx.api.state();
    ctx.images.set(st.images);
    ctx.classes.setList(st.classes);
    if (ctx.S.current) await ctx.nav.open(ctx.S.current, performance.now(), "Reloaded after the import.");
  } catch (e) {
    ctx.status("Error: " + e.message);
  }
}

/**
 * Start the tool on the page's markup under `root` (static/annotator.html).
 * @param {Element} root
 */
export function mount(root) {
  const $ = (id) => root.querySelector("#" + id);
  const S = new PageState(tabSession());
  const status = (text) => { $("ov-status").textContent = text; };
  const ctx = { root, $, S, status, api: new Api(S.session, status), canvas: $("ov-canvas"), stage: $("ov-stage") };
  // panels first, the renderer last: one change updates the lists, then draws once
  Object.assign(ctx, {
    nav: new Navigator(ctx), images: new ImageList(ctx), anns: new AnnotationList(ctx), labels: new LabelPanel(ctx),
    classes: new ClassPanel(ctx), review: new ReviewPanel(ctx),
    found: new FindPanel(ctx), help: new HelpOverlay(ctx), toolbar: new Toolbar(ctx),
    segment: new SegmentTool(ctx), select: new SelectTool(ctx), history: new HistoryControl(ctx),
    brush: new BrushTool(ctx), polygon: new PolygonTool(ctx),
  });
  ctx.overlay = new Overlay($("ov-overlay"), $("ov-brush-cursor"), S);
  const render = new Renderer(ctx.canvas, S);
  mounted = { S, render, ctx };

  applyHints(root);
  const acts = actions(ctx);
  listenKeys(root, acts);
  root.querySelectorAll("[data-act]").forEach((b) =>
    b.addEventListener("click", () => { acts[b.dataset.act](); b.blur(); }));
  listenPointer(ctx);
  new ResizeObserver(() => { // the view fits again, or keeps its centre once zoomed or panned (view.js)
    const w = Math.max(1, ctx.stage.clientWidth), h = Math.max(1, ctx.stage.clientHeight);
    render.resize(w, h);
    ctx.overlay.resize(w, h);
    ctx.nav.resized(w, h);
    S.changed("view");
  }).observe(ctx.stage);
  start(ctx);
}

/**
 * A plain JSON-able copy of the mounted page's state (null before `mount`); with
 * `{layers: true}` also `accepted_layer`: {painted, size} of the accepted masks' layer; with
 * `{labels: true}` also `label_boxes`: the labels drawn on the canvas and where.
 */
export function snapshot(opts = {}) {
  if (!mounted) return null;
  const out = mounted.S.snapshot();
  if (opts.layers) out.accepted_layer = mounted.render.acceptedLayer();
  if (opts.labels) out.label_boxes = mounted.render.labelBoxes; // [{id, text, box: [x, y, w, h]}] CSS px
  return out;
}

/**
 * Time `n` full redraws of the mounted page's canvas (photo, every mask, decorations): what a
 * brush move would cost if it redrew the canvas (benchmarks/browser.py compares the overlay's
 * segment to it). @returns {number} ms per redraw.
 */
export function timeRedraw(n = 20) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) mounted.render.draw();
  return (performance.now() - t0) / n;
}

window.OVSAM = { mount, snapshot, timeRedraw, reload, keymap: KEYMAP, rleCounts, paintRuns, runsContain };
