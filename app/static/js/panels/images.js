/* The image list panel: every image of the folder with its annotation count, done mark and
 * status (to do, in progress, done, reviewed; a row with predictions to review is marked), the
 * filters (by name; by status or "has predictions"), the "done" check box and the progress
 * ("3 / 10 done"). An image whose file cannot
 * be read is marked "unreadable" (its reason in the row's title) and left out of the progress
 * ("3 / 9 done, 1 unreadable") until its file changes.
 */

export class ImageList {
  /** @param {object} ctx the page: {S, api, $, nav (opens images)}. */
  constructor(ctx) {
    this.ctx = ctx;
    this.S = ctx.S;
    this.list = ctx.$("ov-list");
    this.filter = ctx.$("ov-filter");
    this.done = ctx.$("ov-done");
    this.filter.addEventListener("input", () => this.render());
    this.status = ctx.$("ov-image-status");
    this.status.addEventListener("change", () => { this.render(); this.status.blur(); });
    this.done.addEventListener("change", (e) => {
      const S = this.S;
      if (!S.current) return;
      const done = e.target.checked;
      ctx.api.enqueue(async () => { this.set((await ctx.api.done(S.current, done)).images); });
    });
  }

  fillRow(li, im) {
    li.classList.toggle("current", im.key === this.S.current);
    li.classList.toggle("unreadable", !!im.unreadable);
    li.querySelector(".tick").classList.toggle("on", !!im.done);
    li.querySelector(".count").textContent = im.unreadable ? "unreadable" : im.n;
    const c = im.counts || { predicted: 0, accepted: 0, rejected: 0 }, status = im.status || (im.done ? "done" : im.n ? "in progress" : "to do");
    li.classList.toggle("has-predicted", c.predicted > 0);
    const st = li.querySelector(".status");
    st.textContent = status;
    st.dataset.status = status;
    li.title = im.unreadable ? `${im.key}: cannot be read: ${im.unreadable}`
      : `${im.key}: ${status}; ${im.n} annotation(s): ${c.predicted} predicted, ${c.accepted} accepted, ${c.rejected} rejected`;
  }

  /** Whether image entry `im` passes the status filter ("" all, "predicted": has predictions, or a status). */
  keeps(im) {
    const f = this.status.value;
    if (!f) return true;
    if (f === "predicted") return !!(im.counts && im.counts.predicted > 0);
    return (im.status || (im.done ? "done" : im.n ? "in progress" : "to do")) === f;
  }

  row(key) { return this.list.querySelector(`li[data-key="${CSS.escape(key)}"]`); }

  renderProgress() {
    const S = this.S, readable = S.images.filter((i) => !i.unreadable), bad = S.images.length - readable.length;
    this.ctx.$("ov-progress").textContent = `${readable.filter((i) => i.done).length} / ${readable.length}`;
    this.ctx.$("ov-unreadable").textContent = bad ? `, ${bad} unreadable` : "";
    const cur = S.images.find((i) => i.key === S.current);
    this.done.checked = !!(cur && cur.done);
  }

  /** Whether the list marks image `key` unreadable. */
  isUnreadable(key) {
    const im = this.S.images.find((i) => i.key === key);
    return !!(im && im.unreadable);
  }

  /** Mark image `key` unreadable with `reason` (an open refused it). */
  markUnreadable(key, reason) { this.setUnreadable({ [key]: reason }, false); }

  /**
   * The server's word on which images cannot be read ({key: reason}); with `all` (the default)
   * every image it leaves out is readable again (its file changed).
   */
  setUnreadable(bad, all = true) {
    const S = this.S;
    let changed = false;
    for (const im of S.images) {
      const reason = bad[im.key] || (all ? null : im.unreadable || null);
      if ((im.unreadable || null) === reason) continue;
      im.unreadable = reason;
      changed = true;
      const li = this.row(im.key);
      if (li) this.fillRow(li, im);
    }
    if (changed) { this.renderProgress(); S.changed("images"); }
  }

  /** The whole list (start, filter, a new list from the server). */
  render() {
    const S = this.S, f = this.filter.value.trim().toLowerCase();
    this.list.textContent = "";
    for (const im of S.images) {
      if ((f && !im.key.toLowerCase().includes(f)) || !this.keeps(im)) continue;
      const li = document.createElement("li");
      li.dataset.key = im.key;
      li.innerHTML = '<span class="tick" title="done"></span><span class="name"></span><span class="status"></span><span class="count"></span>';
      const key = document.createElement("bdi"); // left to right inside the right-to-left box: "…05001.jpg"
      key.textContent = im.key;
      li.querySelector(".name").appendChild(key);
      this.fillRow(li, im);
      li.addEventListener("click", (e) => this.ctx.nav.open(im.key, e.timeStamp));
      this.list.appendChild(li);
    }
    this.renderProgress();
  }

  /** A new list from the server. @param {import("../api.js").ImageEntry[]} [images] */
  set(images) {
    if (!images) return;
    this.S.images = images;
    this.render();
    this.S.changed("images");
  }

  /** Only the rows of images an edit changed. @param {import("../api.js").ImageEntry[]} [entries] */
  update(entries) {
    const S = this.S;
    for (const e of entries || []) {
      const i = S.images.findIndex((im) => im.key === e.key);
      if (i < 0) continue;
      S.images[i] = e;
      const li = this.row(e.key);
      if (li) this.fillRow(li, e);
    }
    this.renderProgress();
    S.changed("images");
  }

  /** Move the "current" mark from the image shown before (`previous`) to the one shown now. */
  markCurrent(previous) {
    const S = this.S;
    for (const k of [previous, S.current]) {
      const im = k && S.images.find((i) => i.key === k), li = k && this.row(k);
      if (im && li) this.fillRow(li, im);
    }
    this.renderProgress();
  }
}
