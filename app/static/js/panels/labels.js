/* The label panel: the pending mask's suggestions (chips 1 – 5, "Labels coming…" while CLIP's
 * pass runs) and the label field, which searches the vocabulary and the project's classes on
 * the server as one types (annotator/label_search.py: typos and plurals found, common senses
 * first, each sense with its gloss).
 *
 * One keyboard flow: type, ↑ / ↓ move, Enter takes the highlighted row, Enter again accepts (or
 * relabels the selection). A name that is no class yet is a row of its own, "Create class '…'",
 * that the user must pick: Accept (button or Enter) never saves a label the user did not choose,
 * and the results never cover the Accept button (it sits beside the field, the list below it).
 */
import { hint, keysOf } from "../keymap.js";

export class LabelPanel {
  /** @param {object} ctx the page: {S, api, status, $, segment, select (the tools)}. */
  constructor(ctx) {
    this.ctx = ctx;
    this.S = ctx.S;
    this.field = ctx.$("ov-label");
    this.results = ctx.$("ov-label-results");
    this.chips = ctx.$("ov-suggestions");
    this.timer = null;
    this.seq = 0;
    this.labelsOff = null; // why there are no suggestions (no CLIP), shown in the chips' place
    ctx.S.subscribe((topics) => { if (topics.has("suggestions")) this.renderSuggestions(); });
    this.listen();
  }

  renderSuggestions() {
    const S = this.S, box = this.chips, digits = keysOf("pick-suggestion");
    box.textContent = "";
    if (S.labelsPending) {
      const wait = document.createElement("span");
      wait.className = "ov-hint";
      wait.textContent = `Labels coming… (${hint("enter")} accepts with the label typed)`;
      box.appendChild(wait);
    } else if (this.labelsOff) {
      const off = document.createElement("span");
      off.className = "ov-hint";
      off.id = "ov-suggestions-off";
      off.textContent = `No label suggestions: ${this.labelsOff}. Search a label above (${hint("search-labels")}).`;
      box.appendChild(off);
    }
    S.suggestions.slice(0, digits.length).forEach((s, i) => {
      const b = document.createElement("button");
      b.innerHTML = `<span class="k">${digits[i]}</span>`;
      b.appendChild(document.createTextNode(`${s.name} ${s.score.toFixed(2)}`));
      b.title = `Use this label (${digits[i]})`;
      b.addEventListener("click", () => this.pick(s.name));
      box.appendChild(b);
    });
  }

  /** Take suggestion `n` (1-based; the digit keys); false when there is none. */
  pickSuggestion(n) {
    const s = this.S.suggestions[n - 1];
    if (!s) return false;
    this.pick(s.name);
    return true;
  }

  /** Use `name` as the label: the user chose it (later suggestions do not replace it, and Enter
   * or Accept saves it as it is). The field lets the keys go (Enter accepts, M merges, …). */
  pick(name) {
    this.field.value = name;
    this.S.labelLocked = true;
    this.S.labelChoice = name;
    this.results.hidden = true;
    this.field.blur();
    this.ctx.status(`Label: ${name}. ${hint("enter")} accepts.`);
  }

  /** The field shows `name`, a known class the page filled in (the best suggestion): Accept takes it. */
  fill(name) {
    this.field.value = name;
    this.S.labelChoice = name;
  }

  focus() { this.field.focus(); }

  /** Search what is typed, 60 ms after the last key. */
  search() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.searchNow().catch((e) => this.ctx.status("Error: " + e.message)), 60);
  }

  /** Search now (no debounce); resolves once the results for the field's text are shown. */
  async searchNow() {
    clearTimeout(this.timer);
    const q = this.field.value.trim(), seq = ++this.seq;
    const r = q ? await this.ctx.api.labels(q) : { results: [], create: null };
    if (seq === this.seq) this.show(r, q);
  }

  /** The rows for `query`: the classes found, then "Create class '…'" when none is that name. */
  show(r, query) {
    const S = this.S, ul = this.results;
    const rows = r.results.map((x) => ({ ...x, create: false }));
    if (r.create) rows.push({ name: r.create, create: true });
    S.results = rows;
    S.resultsFor = query;
    S.active = rows.length ? 0 : -1;
    ul.textContent = "";
    rows.forEach((row, i) => {
      const li = document.createElement("li");
      if (row.create) {
        li.className = "create";
        li.textContent = `+ Create class '${row.name}'`;
        li.title = "A new class of this project (nothing in the vocabulary is this name)";
      } else {
        const name = document.createElement("span");
        name.className = "name";
        name.textContent = row.name;
        li.appendChild(name);
        if (row.synonym) li.appendChild(span("syn", `(${row.synonym})`));
        if (row.in_project) li.appendChild(span("tag", "in project"));
        if (row.fuzzy) li.appendChild(span("tag", "similar"));
        if (row.gloss) {
          li.appendChild(span("gloss", row.gloss));
          li.title = `${row.name}: ${row.gloss}`;
        }
      }
      if (i === S.active) li.classList.add("active");
      li.addEventListener("mousedown", (e) => { e.preventDefault(); this.pick(row.name); });
      ul.appendChild(li);
    });
    ul.hidden = !rows.length || document.activeElement !== this.field;
  }

  moveActive(d) {
    const S = this.S;
    if (!S.results.length) return;
    S.active = (S.active + d + S.results.length) % S.results.length;
    [...this.results.children].forEach((li, i) => li.classList.toggle("active", i === S.active));
    this.results.children[S.active]?.scrollIntoView({ block: "nearest" });
  }

  /** The label to save, or null (after saying why). What the field shows when the user chose it
   * (a row, a chip, the class panel) or the page filled it with a suggestion; typed text when
   * it is a class's exact name (any case: the class's own spelling is used); anything else is
   * refused, with the list open on what was typed so that the user picks (or creates) one. */
  async resolve() {
    const S = this.S, typed = this.field.value.trim();
    if (!typed) return null;
    if (typed === S.labelChoice) return typed;
    if (S.resultsFor !== typed) await this.searchNow();
    const hit = S.results.find((r) => !r.create && r.name.toLowerCase() === typed.toLowerCase());
    if (hit) { this.pick(hit.name); return hit.name; }
    this.field.focus(); // the list for what was typed opens again
    this.results.hidden = !S.results.length;
    const create = S.results.some((r) => r.create);
    this.ctx.status(`'${typed}' is not a class` + (create
      ? `: pick a class from the list, or "Create class '${typed}'" to make it one (↓, then ${hint("enter")}).`
      : ": pick one from the list."));
    return null;
  }

  /** Enter in the field: the first takes the highlighted row (searching first when the list is
   * older than the text), the next accepts the mask (or relabels the selection). */
  async enter() {
    const S = this.S, typed = this.field.value.trim();
    if (!typed) return;
    if (typed !== S.labelChoice) {
      if (S.resultsFor !== typed) await this.searchNow(); // never pick from an older query
      if (this.field.value.trim() !== typed) return; // typed on meanwhile
      const row = S.active >= 0 ? S.results[S.active] : null;
      if (row) this.pick(row.name);
      else this.ctx.status(`Nothing matches '${typed}'.`);
      return;
    }
    this.field.blur();
    if (S.pending) this.ctx.segment.accept(); else if (S.selection.size) this.ctx.select.relabel();
    else this.ctx.status(`Label: ${typed}. Click an object to segment it, or select annotations to relabel.`);
  }

  listen() {
    const label = this.field;
    label.addEventListener("input", () => {
      Object.assign(this.S, { labelLocked: true, labelChoice: null, resultsFor: null }); // a fresh list, first row active
      this.search();
    });
    label.addEventListener("focus", () => {
      if (!label.value) return;
      const typed = label.value.trim();
      if (typed === this.S.labelChoice) setTimeout(() => label.select(), 0); // typing replaces a chosen label
      else if (typed === this.S.resultsFor) this.results.hidden = !this.S.results.length; // the list as it was
      else this.search();
    });
    label.addEventListener("blur", () => { this.results.hidden = true; });
    label.addEventListener("keydown", (e) => {
      if (e.key === "ArrowDown") { this.moveActive(1); e.preventDefault(); }
      else if (e.key === "ArrowUp") { this.moveActive(-1); e.preventDefault(); }
      else if (e.key === "Escape") { this.results.hidden = true; label.blur(); }
      else if (e.key === "Enter") { e.preventDefault(); this.enter().catch((err) => this.ctx.status("Error: " + err.message)); }
    });
  }

  /** The start state: the vocabulary's size (the field's placeholder) and, without CLIP, why
   * there are no suggestions (kept in the chips' place). */
  setVocabulary(n, labelsOff) {
    this.field.placeholder = `Label (${hint("search-labels")})`;
    this.field.title = `Search ${n.toLocaleString()} classes and this project's own; a new name becomes a class when you pick "Create class"`;
    this.labelsOff = labelsOff || null;
    this.renderSuggestions();
  }
}

function span(cls, text) {
  const s = document.createElement("span");
  s.className = cls;
  s.textContent = text;
  return s;
}
