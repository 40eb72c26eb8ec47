/* The `?` overlay: the keymap's rows as a table (keymap.js is its only source). */
import { helpRows, hint } from "../keymap.js";

export class HelpOverlay {
  /** @param {object} ctx the page: {$}. */
  constructor(ctx) {
    this.el = ctx.$("ov-help");
    const card = this.el.querySelector(".ov-help-card");
    const table = document.createElement("table");
    for (const { key, help } of helpRows()) {
      const tr = table.insertRow();
      tr.insertCell().textContent = key;
      tr.insertCell().textContent = help;
    }
    const close = document.createElement("p");
    close.textContent = `Press ${hint("help")} or ${hint("escape")} to close.`;
    card.append(table, close);
    this.el.addEventListener("click", () => this.toggle(false));
  }

  get open() { return !this.el.hidden; }

  /** Show (true), hide (false) or flip (undefined) the overlay. */
  toggle(show) { this.el.hidden = show === undefined ? !this.el.hidden : !show; }
}
