/* The class panel: the project's classes (every image's), each with its colour, stable id, count
 * and key (Ctrl + 1 … 9, 0: the first ten, CVAT's "switch label" keys; the digits alone stay the
 * suggestion chips). A click on a class (or its key) uses it as the label of the pending mask or
 * the selection, as a suggestion chip does. Rename: double click the name or Rename, Enter saves, Esc
 * cancels (into an existing class's name: a merge). Merge: check two or more, "Merge into…", type
 * or keep the name, Enter. Class changes have their own undo (↶ / ↷ here): dataset-wide, not an
 * image's Ctrl + Z. With `--classes FILE` only these classes label anything (the server refuses
 * others, the status line says why).
 */
import { colourOf, rgbCss, setClasses } from "../colours.js";
import { keysOf } from "../keymap.js";

export class ClassPanel {
  /** @param {object} ctx the page: {S, api, status, $, labels (the label panel)}. */
  constructor(ctx) {
    this.ctx = ctx;
    this.S = ctx.S;
    this.list = ctx.$("ov-classes");
    this.into = ctx.$("ov-class-into");
    /** @type {{name: string, id: number, count: number}[]} */
    this.classes = [];
    this.checked = new Set();
    this.restricted = false;
    this.history = { undoable: 0, redoable: 0 };
    this.timer = null;
    ctx.S.subscribe((topics) => { if (topics.has("anns")) this.refreshSoon(); });
    ctx.$("ov-class-merge").addEventListener("click", () => this.startMerge());
    ctx.$("ov-class-undo").addEventListener("click", () => this.travel("undo"));
    ctx.$("ov-class-redo").addEventListener("click", () => this.travel("redo"));
    this.into.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); this.merge(this.into.value); }
      else if (e.key === "Escape") { e.preventDefault(); this.endMerge(); }
    });
  }

  /** The start state's class list: {restricted, names}. */
  setList(list) {
    this.restricted = !!(list && list.restricted);
    this.ctx.$("ov-class-note").textContent = this.restricted ? " (only these: --classes)" : "";
  }

  /** Fetch the classes again shortly (after the annotations changed: counts). */
  refreshSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load().catch((e) => this.ctx.status("Error: " + e.message)), 150);
  }

  async load() { this.show(await this.ctx.api.classes()); }

  /** Show a classes answer (GET classes, or a class change's). */
  show(r) {
    this.classes = r.classes;
    this.history = r.history;
    if (setClasses(this.classes)) this.S.changed("colours"); // distinct colours for the project's classes
    const names = new Set(this.classes.map((c) => c.name));
    this.checked = new Set([...this.checked].filter((n) => names.has(n)));
    this.render();
  }

  render() {
    if (this.editing) { this.stale = true; return; } // a rename field is open: redrawn when it closes
    this.stale = false;
    const digits = keysOf("pick-class"), $ = this.ctx.$;
    this.list.textContent = "";
    this.classes.forEach((c, i) => this.list.appendChild(this.row(c, i < digits.length ? digits[i] : null)));
    $("ov-class-count").textContent = this.classes.length;
    $("ov-class-merge").disabled = this.checked.size < 2;
    $("ov-class-undo").disabled = !this.history.undoable;
    $("ov-class-redo").disabled = !this.history.redoable;
  }

  row(c, digit) {
    const li = document.createElement("li");
    li.dataset.name = c.name;
    li.className = (this.checked.has(c.name) ? "selected " : "") + (c.listed === false ? "unlisted" : "");
    li.innerHTML = `<input type="checkbox" class="pick" title="Check to merge"><span class="swatch"></span>` +
      `<span class="k"></span><span class="name"></span><span class="count"></span>` +
      `<button class="rename" title="Rename this class (double click the name)">Rename</button>`;
    const box = li.querySelector(".pick");
    box.checked = this.checked.has(c.name);
    box.addEventListener("change", () => {
      if (box.checked) this.checked.add(c.name); else this.checked.delete(c.name);
      this.render();
    });
    li.querySelector(".swatch").style.background = rgbCss(colourOf(c.name), 1);
    li.querySelector(".k").textContent = digit == null ? "" : `^${digit}`;
    li.querySelector(".name").textContent = c.name;
    li.querySelector(".name").title = `${c.name}: id ${c.id} in every export` +
      (c.listed === false ? " (not in --classes: refused as a label; rename or merge it into a listed class)" : "");
    li.querySelector(".count").textContent = `#${c.id} · ${c.count}`;
    li.querySelector(".rename").addEventListener("click", (e) => { e.stopPropagation(); this.startRename(li, c); });
    li.querySelector(".name").addEventListener("dblclick", (e) => { e.stopPropagation(); this.startRename(li, c); });
    li.addEventListener("click", (e) => {
      if (e.target === box || e.target.tagName === "INPUT" || e.detail > 1) return;
      this.pick(c.name);
    });
    return li;
  }

  /** Use class `name` as the label (as a suggestion chip does). */
  pick(name) { this.ctx.labels.pick(name); }

  /** Ctrl + digit: class 1 … 9, 0 = 10 (the list's order, by id). */
  pickKey(key) {
    const digits = keysOf("pick-class"), c = this.classes[digits.indexOf(key)];
    if (!c) { this.ctx.status(`No class ${key === "0" ? 10 : key} in the class list.`); return; }
    this.pick(c.name);
  }

  /** An inline field in place of the class's name: Enter renames, Esc (or leaving it) cancels. */
  startRename(li, c) {
    const name = li.querySelector(".name"), field = document.createElement("input");
    field.className = "ov-input ov-rename";
    field.value = c.name;
    field.setAttribute("aria-label", `Rename class ${c.name}`);
    name.replaceWith(field);
    this.editing = c.name;
    field.focus();
    field.select();
    let done = false;
    const end = () => { if (!done) { done = true; this.editing = null; this.render(); } };
    field.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        done = true;
        this.editing = null;
        this.rename(c.name, field.value);
      } else if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        end();
        this.ctx.status(`Rename of ${c.name} cancelled.`);
      }
    });
    field.addEventListener("blur", end);
  }

  rename(old, next) {
    const typed = next.trim();
    if (typed === old) { this.render(); return; }
    this.change(() => this.ctx.api.renameClass(old, typed, this.S.current),
      (r) => (r.moves.length ? `Renamed ${old} → ${typed} on ${r.images.length} image(s), ${r.ids.length} annotation(s)` : ""));
  }

  startMerge() {
    if (this.checked.size < 2) return;
    this.into.hidden = false;
    this.into.value = [...this.checked][0];
    this.into.focus();
    this.into.select();
    this.ctx.status(`Merge ${[...this.checked].join(", ")} into the class named in the field: Enter merges, Esc cancels.`);
  }

  endMerge() { this.into.hidden = true; this.into.blur(); }

  merge(into) {
    const names = [...this.checked];
    this.endMerge();
    this.change(() => this.ctx.api.mergeClasses(names, into.trim(), this.S.current), (r) => {
      this.checked = new Set();
      return `Merged ${names.join(", ")} into ${into.trim()}: ${r.ids.length} annotation(s)`;
    });
  }

  travel(way) {
    this.change(() => this.ctx.api.classHistory(way, this.S.current), (r) => (r.done
      ? `${way === "undo" ? "Undid" : "Redid"} the class ${r.moves.map((m) => m.join(" → ")).join(", ")}`
      : `Nothing to ${way} in the class history.`));
  }

  /** Run a class change; show its classes and the shown image's annotations as they are now. */
  change(call, say) {
    const S = this.S, ctx = this.ctx, key = S.current;
    ctx.api.enqueue(async () => {
      let r;
      try { r = await call(); } catch (e) { this.render(); throw e; }
      if (key === S.current && r.annotations.length) {
        for (const a of r.annotations) {
          const was = S.anns.get(a.id);
          S.addAnnotation(a);
          if (was) S.anns.get(a.id).hidden = was.hidden;
        }
        S.changed("anns");
      }
      this.show(r);
      const told = say(r);
      if (told) ctx.status(`${told} (${r.history.undoable} class change(s) to undo here).`);
    });
  }
}
