/* The page's calls to its server, /ovsam/api/... (app/routes.py routes them to app/api.py).
 *
 * Every POST body is JSON and carries the tab's `session`; answers are JSON. A failed call
 * answers {error} (the app's ApiError, or a body its schema refused: app/routes.py) with a 4xx/5xx
 * status; `call` throws an Error with that reason. Prompts go through one queue so that they
 * reach the server in the order the user gave them.
 */

// ------------------------------------------------------------------ shapes (as sent and received)
/** @typedef {[number, number]} Point  an (x, y) position in original image pixels */
/** @typedef {{points: Point[], labels: number[], box: number[] | null}} Prompt
 *  labels: 1 positive, 0 negative, one per point; box: [x0, y0, x1, y1] original pixels or null */
/** @typedef {{size: [number, number], counts: string}} Rle  COCO compressed RLE, size [h, w] */
/** @typedef {{rle: Rle, outline: number[][]}} MaskPayload
 *  at the displayed resolution; outline: polygons [x0, y0, x1, y1, ...] through boundary pixel centres */
/** @typedef {{name: string, score: number}} Suggestion  a label suggestion (score: probability) */
/** @typedef {{predicted: number, accepted: number, rejected: number}} StateCounts  annotations per review state */
/** @typedef {{key: string, n: number, done: boolean, unreadable: string | null,
 *    status: "to do" | "in progress" | "done" | "reviewed", counts: StateCounts}} ImageEntry  an image-list row */
/** @typedef {MaskPayload & {id: number, label: string, score: number | null, predicted_iou: number | null,
 *    area: number, bbox: number[], state: "predicted" | "accepted" | "rejected"}} Annotation
 *  a stored annotation; bbox XYWH original pixels */
/** @typedef {MaskPayload & {index: number, label: string, score: number, area: number, bbox: number[]}}
 *  Found  a find-all candidate; bbox XYXY original pixels */

/** @typedef {{session: string}} SessionBody */
/** @typedef {{request_id?: string}} WriteBody  a write's id (Api.write makes one per action) */
/** @typedef {{notes: string[], images: ImageEntry[], current: string | null, vocab_size: number,
 *    has_labels: boolean, labels_unavailable: string | null, find_unavailable: string | null,
 *    methods: {id: string, title: string}[]}} StateResponse  GET state?session= */
/** @typedef {SessionBody & {key: string}} OpenRequest  POST open */
/** @typedef {{key: string, width: number, height: number, scale: number, ready_ms: number,
 *    cached: boolean, labels_ready: boolean, annotations: Annotation[], history: HistoryDepth}} OpenResponse */
/** @typedef {SessionBody & {key: string, x: number, y: number, positive: boolean}} ClickRequest  POST click */
/** @typedef {SessionBody & {key: string, box: number[]}} BoxRequest  POST box (XYXY original pixels) */
/** @typedef {SessionBody & {key: string}} CandidateRequest  POST candidate */
/** @typedef {SessionBody & {key: string, id: number}} RepromptRequest  POST reprompt */
/** @typedef {{mask: MaskPayload | null, prompt: Prompt, labels: Suggestion[], token: string | null,
 *    area?: number, predicted_iou?: number, labels_pending?: boolean, engine_ms?: number | null,
 *    candidate?: number, candidates?: number, replaces: number | null}}
 *  PromptResponse  click, box, candidate, reprompt, undo and clear (undo, clear: POST {session}) */
/** @typedef {SessionBody & {key: string}} SuggestRequest  POST suggest */
/** @typedef {{token: string | null, labels: Suggestion[]}} SuggestResponse */
/** @typedef {SessionBody & WriteBody & {key: string, label: string}} AcceptRequest  POST accept */
/** @typedef {{annotation: Annotation, changed_images: ImageEntry[]}} AcceptResponse */
/** @typedef {{results: {name: string, synonym: string | null}[]}} LabelsResponse  GET labels?q= */
/** @typedef {SessionBody & WriteBody & {ids: number[]}} DeleteRequest  POST delete */
/** @typedef {{deleted: number[], changed_images: ImageEntry[]}} DeleteResponse */
/** @typedef {SessionBody & WriteBody & {ids: number[], label: string}} RelabelRequest  POST relabel */
/** @typedef {{annotations: Annotation[]}} RelabelResponse */
/** @typedef {SessionBody & WriteBody & {ids: number[], label: string}} MergeRequest  POST merge ("": keep the label) */
/** @typedef {{annotation: Annotation, removed: number[], changed_images: ImageEntry[]}} MergeResponse  merge, intersect */
/** @typedef {SessionBody & WriteBody & {ids: number[]}} SubtractRequest  POST subtract (ids[1:] cut out of ids[0]) */
/** @typedef {{annotation: Annotation, changed_images: ImageEntry[]}} SubtractResponse */
/** @typedef {SessionBody & WriteBody & {key: string, done: boolean}} DoneRequest  POST done */
/** @typedef {{images: ImageEntry[]}} DoneResponse */
/** @typedef {SessionBody & WriteBody & {method: string}} EverythingRequest  POST everything */
/** @typedef {{annotations: Annotation[], patches: number, seconds: number, how: string,
 *    already_annotated: number, changed_images: ImageEntry[]}} EverythingResponse */
/** @typedef {SessionBody & {key: string, classes: string, threshold: number | null, method: string}}
 *  FindRequest  POST find (classes comma-separated; threshold null: where a named class wins) */
/** @typedef {{key: string, found: Found[], classes: {name: string, in_vocabulary: boolean}[],
 *    already_annotated: number, reused_patches: boolean, seconds: number, note: string | null}} FindResponse */
/** @typedef {SessionBody & WriteBody & {key: string, indices: number[]}} FindAcceptRequest  POST find_accept */
/** @typedef {{annotations: Annotation[], indices: number[], changed_images: ImageEntry[]}} FindAcceptResponse */
/** @typedef {{progress: number | null}} ProgressResponse  GET progress?session= (fraction done) */
/** @typedef {WriteBody & {ids: number[], state: string, key: string}} ReviewRequest  POST review */
/** @typedef {WriteBody & {key: string}} ReviewImageRequest  POST review/image (every prediction accepted) */
/** @typedef {{annotations: Annotation[], changed_images: ImageEntry[], totals: StateCounts,
 *    history: HistoryDepth}} ReviewResponse  POST review, POST review/image */
/** @typedef {WriteBody & {key: string, reviewed: boolean}} ReviewedRequest  POST reviewed */
/** @typedef {{changed_images: ImageEntry[], totals: StateCounts}} ReviewedResponse */

/** @typedef {{undoable: number, redoable: number}} HistoryDepth */
/** @typedef {SessionBody & {key: string, op: string, points: number[][], radius?: number}} PaintRequest  POST paint (answers PromptResponse) */
/** @typedef {WriteBody & {id: number, op: string, points: number[][], radius?: number}} EditRequest  POST edit */
/** @typedef {{annotation: Annotation, history: HistoryDepth}} EditResponse  POST edit, POST outline */
/** @typedef {{id: number, rings: {points: number[][], hole: boolean}[]}} OutlineResponse  GET outline?id= */
/** @typedef {WriteBody & {id: number, old: number[][], new: number[][], hole: boolean}} OutlineRequest  POST outline */
/** @typedef {WriteBody & {key: string, way: "undo" | "redo"}} HistoryRequest  POST history */
/** @typedef {{done: boolean, kind: string | null, removed: number[], annotations: Annotation[],
 *    history: HistoryDepth, changed_images: ImageEntry[]}} HistoryResponse */

export const API = "/ovsam/api/";

/** Delays between the tries of a write (ms), and the statuses that are tried again. */
const RETRIES = [500, 1000, 2000];
const RETRY_STATUS = new Set([502, 503, 504]);

/**
 * A new request id: a random UUID (crypto.randomUUID needs a secure context, which a page
 * served on a LAN address over plain HTTP is not: getRandomValues works everywhere).
 * @returns {string}
 */
export function requestId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The URL of an image at its displayed resolution (GET image?key=). */
export function imageUrl(key) { return API + "image?key=" + encodeURIComponent(key); }

export class Api {
  /**
   * @param {string} session the tab's session id, sent with every POST.
   * @param {(text: string) => void} status shows a failed queued call's reason.
   */
  constructor(session, status) {
    this.session = session;
    this.status = status;
    this.queue = Promise.resolve();
  }

  /**
   * GET `path` (body undefined) or POST `body` (plus the session) as JSON; the answer's JSON.
   * @throws {Error} the server's reason when the status is not 2xx.
   */
  async call(path, body) {
    const opts = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ session: this.session, ...body }),
    };
    const res = await fetch(API + path, opts);
    const data = await res.json().catch(() => ({ error: res.statusText }));
    if (!res.ok) throw Object.assign(new Error(data.error || data.detail || res.statusText), { status: res.status });
    return data;
  }

  /**
   * POST a write with a request id made once for it (the server stores a retried or duplicated
   * write once and answers it as the first time). A lost connection or a 502/503/504 is retried
   * with the same id, 3 times at most (0.5, 1, 2 s apart); other refusals are not.
   * @throws {Error} the server's reason (e.g. 507 "disk full: nothing saved").
   */
  async write(path, body) {
    const request_id = requestId();
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.call(path, { ...body, request_id });
      } catch (e) {
        if (attempt >= RETRIES.length || !(e instanceof TypeError || RETRY_STATUS.has(e.status))) throw e;
        await new Promise((r) => setTimeout(r, RETRIES[attempt]));
      }
    }
  }

  /** Run `fn` after every call queued before it; a failure shows in the status line. */
  enqueue(fn) {
    this.queue = this.queue.then(fn).catch((e) => this.status("Error: " + e.message));
    return this.queue;
  }

  /** @returns {Promise<StateResponse>} */
  state() { return this.call("state?session=" + encodeURIComponent(this.session)); }
  /** @returns {Promise<OpenResponse>} */
  open(key) { return this.call("open", { key }); }
  /** @returns {Promise<PromptResponse>} */
  click(key, x, y, positive) { return this.call("click", { key, x, y, positive }); }
  /** @returns {Promise<PromptResponse>} */
  box(key, box) { return this.call("box", { key, box }); }
  /** @returns {Promise<PromptResponse>} saved annotation `id` as the pending mask (the next accept replaces it) */
  reprompt(key, id) { return this.call("reprompt", { key, id }); }
  /** @returns {Promise<PromptResponse>} SAM's next candidate mask for the pending prompt */
  candidate(key) { return this.call("candidate", { key }); }
  /** @returns {Promise<PromptResponse>} */
  undo() { return this.call("undo", {}); }
  /** @returns {Promise<PromptResponse>} the prompt step undone last, back */
  redo() { return this.call("redo", {}); }
  /** @returns {Promise<PromptResponse>} a hand edit of the pending mask (or a mask drawn from nothing) */
  paint(key, op, points, radius) { return this.call("paint", { key, op, points, radius }); }
  /** @returns {Promise<EditResponse>} a hand edit of saved annotation `id`, in place */
  edit(id, op, points, radius) { return this.write("edit", { id, op, points, radius }); }
  /** @returns {Promise<OutlineResponse>} annotation `id`'s outline as editable rings */
  outline(id) { return this.call("outline?id=" + encodeURIComponent(id)); }
  /** @returns {Promise<EditResponse>} one ring of annotation `id`'s outline moved */
  moveOutline(id, old, next, hole) { return this.write("outline", { id, old, new: next, hole }); }
  /** @returns {Promise<HistoryResponse>} undo or redo (`way`) the last change of image `key` */
  history(key, way) { return this.write("history", { key, way }); }
  /** @returns {Promise<PromptResponse>} */
  clear() { return this.call("clear", {}); }
  /** @returns {Promise<SuggestResponse>} */
  suggest(key) { return this.call("suggest", { key }); }
  /** @returns {Promise<AcceptResponse>} */
  accept(key, label) { return this.write("accept", { key, label }); }
  /** @returns {Promise<LabelsResponse>} */
  labels(q) { return this.call("labels?q=" + encodeURIComponent(q)); }
  /** @returns {Promise<DeleteResponse>} */
  delete(ids) { return this.write("delete", { ids }); }
  /** @returns {Promise<RelabelResponse>} */
  relabel(ids, label) { return this.write("relabel", { ids, label }); }
  /** @returns {Promise<MergeResponse>} */
  merge(ids, label) { return this.write("merge", { ids, label }); }
  /** @returns {Promise<MergeResponse>} the selection replaced by the pixels all of it covers */
  intersect(ids, label) { return this.write("intersect", { ids, label }); }
  /** @returns {Promise<SubtractResponse>} the masks of ids[1:] cut out of ids[0] */
  subtract(ids) { return this.write("subtract", { ids }); }
  /** @returns {Promise<DoneResponse>} */
  done(key, done) { return this.write("done", { key, done }); }
  /** @returns {Promise<EverythingResponse>} */
  everything(method) { return this.write("everything", { method }); }
  /** @returns {Promise<FindResponse>} */
  find(key, classes, threshold, method) { return this.call("find", { key, classes, threshold, method }); }
  /** @returns {Promise<FindAcceptResponse>} */
  findAccept(key, indices) { return this.write("find_accept", { key, indices }); }
  /** @returns {Promise<ReviewResponse>} annotations `ids` of image `key` set to `state` (accepted, rejected, predicted) */
  review(ids, state, key) { return this.write("review", { ids, state, key }); }
  /** @returns {Promise<ReviewResponse>} every prediction of image `key` accepted */
  reviewImage(key) { return this.write("review/image", { key }); }
  /** @returns {Promise<ReviewedResponse>} image `key` marked reviewed (and so done), or not */
  reviewed(key, reviewed) { return this.write("reviewed", { key, reviewed }); }
  /** @returns {Promise<ProgressResponse>} */
  progress() { return this.call("progress?session=" + encodeURIComponent(this.session)); }

  /** The project's classes: {classes: [{name, id, count}], restricted, history}. */
  classes() { return this.call("classes"); }

  /** Rename a class on every image (into an existing one: a merge); `key`: the image shown. */
  renameClass(old, next, key) { return this.write("classes/rename", { old, new: next, key }); }

  /** Merge classes `names` into `into` (one of them, another class or a new name). */
  mergeClasses(names, into, key) { return this.write("classes/merge", { names, into, key }); }

  /** Undo or redo the last class change (the dataset-wide class history). */
  classHistory(way, key) { return this.write("classes/history", { way, key }); }

  /**
   * Show the server's progress of a long pass as "`what` N %" until the returned timer is cleared.
   * @returns {number} the setInterval id.
   */
  pollProgress(what) {
    this.status(what);
    return setInterval(async () => {
      try {
        const p = await this.progress();
        if (p.progress != null) this.status(`${what} ${Math.round(p.progress * 100)} %`);
      } catch (e) { /* the next poll retries */ }
    }, 500);
  }
}
