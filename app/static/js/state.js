/* The page's state: one object the modules read and write, `subscribe` for its changes and a
 * plain JSON-able `snapshot()` of it for tests and benchmarks (window.OVSAM.snapshot()).
 *
 * A module that changes fields calls `changed(topic, ...)` once, naming what it changed; every
 * subscriber is called once per `changed` call with the set of topics (so a change that touches
 * the annotations and the selection draws the canvas once). Topics:
 *   "image"        another image is shown (size, photo, view reset)
 *   "images"       the image list's entries
 *   "anns"         the annotations of the image (added, removed, relabelled, hidden)
 *   "selection"    the selected annotations
 *   "hover"        the annotation or candidate under the pointer in a list
 *   "pending"      the pending mask and the prompt (points, labels, box)
 *   "suggestions"  the label suggestions (and whether they are still coming)
 *   "found"        the find-all candidates
 *   "view"         zoom, pan, the box being dragged, mask visibility and opacity
 *   "tool"         the active tool
 *   "brush"        the brush's radius
 *   "polygon"      the polygon being drawn
 *   "outline"      the outline being edited (the polygon tool on one selected annotation)
 *   "review"       the review filter (which annotations' states are shown)
 */
import { rleCounts } from "./rle.js";

/** An empty prompt, as the server sends it. @returns {import("./api.js").Prompt} */
export function emptyPrompt() { return { points: [], labels: [], box: null }; }

/** The tab's session id: one per browser tab, kept across reloads (sessionStorage). */
export function tabSession() {
  const k = "ovsam-session";
  let id = sessionStorage.getItem(k);
  if (!id) {
    id = (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) + Date.now());
    sessionStorage.setItem(k, id);
  }
  return id;
}

/** An annotation or candidate as the page keeps it: the server's fields plus decoded run lengths. */
function withCounts(a) { return { ...a, counts: rleCounts(a.rle.counts) }; }

export class PageState {
  /** @param {string} session the tab's session id. */
  constructor(session) {
    this.session = session;
    /** @type {import("./api.js").ImageEntry[]} */
    this.images = [];
    this.findUnavailable = null;
    // the image shown: key, photo, original (W, H) and displayed (dw, dh) size; the view on it
    this.current = null; this.img = null; this.W = 0; this.H = 0; this.dw = 0; this.dh = 0;
    this.z = 1; this.tx = 0; this.ty = 0; this.fitted = false;
    /** @type {Map<number, object>} annotation id -> annotation (with `counts`, `hidden`, `state`) */
    this.anns = new Map();
    // the review filter: "all" (predicted and accepted), "predicted", "accepted" or "rejected"
    this.reviewFilter = "all";
    this.selection = new Set();
    this.hover = null;
    // the prompt being built and its mask
    this.pending = null; this.prompt = emptyPrompt(); this.token = null;
    this.suggestions = []; this.labelsPending = false; this.labelsFetch = null; this.labelLocked = false;
    this.labelChoice = null; // the label field's text when the user chose it (or the page filled in a class)
    // the label search
    this.results = []; this.resultsFor = null; this.active = -1;
    /** @type {{key: string, items: Map<number, object>} | null} find-all candidates by index */
    this.found = null;
    this.foundHover = null;
    this.tool = "segment"; this.showMasks = true; this.opacity = 0.45;
    // the hand tools: the brush's radius (original pixels), the stroke being painted, the
    // polygon being drawn, the outline being edited; the image's saved-change history depth
    this.brushRadius = 8; this.stroke = null; this.polygon = null; this.outline = null;
    this.history = { undoable: 0, redoable: 0 }; this.promptRedo = 0;
    // the pointer: a press, a box being dragged, a pan, the space key held
    this.press = null; this.drag = null; this.pan = null; this.space = false;
    this.busy = false; // a long pass (everything, find all) runs
    this._subscribers = [];
  }

  /**
   * Call `fn(topics)` after every change. @param {(topics: Set<string>) => void} fn
   * @returns {() => void} unsubscribes.
   */
  subscribe(fn) {
    this._subscribers.push(fn);
    return () => { this._subscribers = this._subscribers.filter((f) => f !== fn); };
  }

  /** Tell the subscribers what changed (topics above). */
  changed(...topics) {
    const set = new Set(topics);
    for (const fn of this._subscribers) fn(set);
  }

  /**
   * Whether annotation `a` is drawn, listed and hit: not hidden by its eye, and of a state the
   * review filter shows (rejected ones only under the "rejected" filter).
   */
  shown(a) { return !a.hidden && this.passesFilter(a); }

  /** Whether the review filter shows annotation `a`'s state (its eye aside). */
  passesFilter(a) {
    const f = this.reviewFilter, st = a.state || "accepted";
    return f === "all" ? st !== "rejected" : st === f;
  }

  /** Keep an annotation from the server (decodes its RLE once). */
  addAnnotation(a) {
    const ann = withCounts(a);
    ann.hidden = false;
    this.anns.set(ann.id, ann);
  }

  /** Hold find-all candidates of image `key` (none: no candidates). */
  setFound(key, items) {
    this.found = items.length ? { key, items: new Map(items.map((f) => [f.index, withCounts(f)])) } : null;
    this.foundHover = null;
  }

  /**
   * A plain JSON-able copy of what tests and benchmarks read.
   * @returns {object} {session, current, W, H, dw, dh, z, tx, ty, fitted, prompt, pending (bool),
   *   token, anns: [{id, label, score, area, bbox, hidden, state}], reviewFilter, selection: [ids], hover, tool,
   *   showMasks, opacity, suggestions: [{name, score}], labelsPending, labelLocked, labelChoice,
   *   results: [{name, synonym, gloss, fuzzy, in_project, create}], resultsFor, active, found: null | {key, items: [{index, label, score,
   *   area, bbox, rle}]}, foundHover, busy, images: [{key, n, done, status, counts}], brushRadius, stroke (bool),
   *   polygon: null | [[x, y]], outline: null | {id, counts, rings}, history: {undoable, redoable}}
   */
  snapshot() {
    const copy = (x) => (x == null ? x : JSON.parse(JSON.stringify(x)));
    return {
      session: this.session, current: this.current,
      W: this.W, H: this.H, dw: this.dw, dh: this.dh, z: this.z, tx: this.tx, ty: this.ty, fitted: this.fitted,
      prompt: copy(this.prompt), pending: !!this.pending, token: this.token,
      anns: [...this.anns.values()].map((a) => ({
        id: a.id, label: a.label, score: a.score, area: a.area, bbox: a.bbox, hidden: a.hidden, state: a.state,
      })),
      reviewFilter: this.reviewFilter,
      selection: [...this.selection], hover: this.hover,
      tool: this.tool, showMasks: this.showMasks, opacity: this.opacity,
      suggestions: copy(this.suggestions), labelsPending: this.labelsPending, labelLocked: this.labelLocked,
      labelChoice: this.labelChoice, results: copy(this.results), resultsFor: this.resultsFor, active: this.active,
      found: this.found && {
        key: this.found.key,
        items: [...this.found.items.values()].map((f) => ({
          index: f.index, label: f.label, score: f.score, area: f.area, bbox: f.bbox, rle: { size: [...f.rle.size], counts: f.rle.counts },
        })),
      },
      foundHover: this.foundHover, busy: this.busy,
      brushRadius: this.brushRadius, stroke: !!this.stroke, polygon: copy(this.polygon && this.polygon.points),
      outline: copy(this.outline), history: copy(this.history),
      images: this.images.map((im) => ({ key: im.key, n: im.n, done: im.done, status: im.status, counts: copy(im.counts) })),
    };
  }
}
