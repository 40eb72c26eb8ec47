/* The label panel: the pending mask's suggestions (chips 1 – 5, "Labels coming…" while CLIP's
 * pass runs) and the label field, which searches the vocabulary on the server as one types
 * (↑ / ↓ move, Enter takes the highlighted name, then accepts; a name not in the vocabulary
 * becomes a new category).
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

  /** Use `name` as the label (the user chose it: later suggestions do not replace it). */
  pick(name) {
    this.field.value = name;
    this.S.labelLocked = true;
    this.results.hidden = true;
    this.ctx.status(`Label: ${name}. ${hint("enter")} accepts.`);
  }

  focus() { this.field.focus(); }

  /** Search what is typed, 60 ms after the last key. */
  search() {
    clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      const q = this.field.value.trim(), seq = ++this.seq;
      if (!q) { this.show([], q); return; }
      try {
        const r = await this.ctx.api.labels(q);
        if (seq === this.seq) this.show(r.results, q);
      } catch (e) { this.ctx.status("⚠ " + e.message); }
    }, 60);
  }

  /** Search now (no debounce); resolves once the results for the field's text are shown. */
  async searchNow() {
    clearTimeout(this.timer);
    const q = this.field.value.trim(), seq = ++this.seq;
    const r = q ? await this.ctx.api.labels(q) : { results: [] };
    if (seq === this.seq) this.show(r.results, q);
  }

  show(results, query) {
    const S = this.S, ul = this.results;
    S.results = results;
    S.resultsFor = query;
    S.active = results.length ? 0 : -1;
    ul.textContent = "";
    results.forEach((r, i) => {
      const li = document.createElement("li");
      li.textContent = r.name;
      if (r.synonym) {
        const syn = document.createElement("span");
        syn.className = "syn";
        syn.textContent = `  (${r.synonym})`;
        li.appendChild(syn);
      }
      if (i === S.active) li.className = "active";
      li.addEventListener("mousedown", (e) => { e.preventDefault(); this.pick(r.name); });
      ul.appendChild(li);
    });
    ul.hidden = !results.length || document.activeElement !== this.field;
  }

  moveActive(d) {
    const S = this.S;
    if (!S.results.length) return;
    S.active = (S.active + d + S.results.length) % S.results.length;
    [...this.results.children].forEach((li, i) => li.classList.toggle("active", i === S.active));
  }

  /** Enter in the field: search first if the results are older than the text; take the
   * highlighted name; once the field holds a name, accept the mask (or relabel the selection). */
  enter(e) {
    const S = this.S, label = this.field, typed = label.value.trim();
    if (!e.shiftKey && typed && S.resultsFor !== typed) {
      this.searchNow().catch((err) => this.ctx.status("⚠ " + err.message)); // never pick from an older query
      return;
    }
    const open = !this.results.hidden && S.active >= 0 && S.results[S.active];
    if (open && S.results[S.active].name.toLowerCase() !== typed.toLowerCase() && !e.shiftKey) {
      this.pick(S.results[S.active].name); // first Enter takes the highlighted name
    } else {
      this.pick(typed); // a name not in the vocabulary is a new category
      label.blur();
      if (S.pending) this.ctx.segment.accept(); else if (S.selection.size) this.ctx.select.relabel();
    }
  }

  listen() {
    const label = this.field;
    label.addEventListener("input", () => { this.S.labelLocked = true; this.search(); });
    label.addEventListener("focus", () => { if (label.value) this.search(); });
    label.addEventListener("blur", () => { this.results.hidden = true; });
    label.addEventListener("keydown", (e) => {
      if (e.key === "ArrowDown") { this.moveActive(1); e.preventDefault(); }
      else if (e.key === "ArrowUp") { this.moveActive(-1); e.preventDefault(); }
      else if (e.key === "Escape") { this.results.hidden = true; label.blur(); }
      else if (e.key === "Enter") { e.preventDefault(); this.enter(e); }
    });
  }

  /** The start state's vocabulary size in the field's placeholder. */
  setVocabularySize(n) {
    this.field.placeholder = `Label: search ${n.toLocaleString()} classes or type a new one (${hint("search-labels")})`;
  }
}
