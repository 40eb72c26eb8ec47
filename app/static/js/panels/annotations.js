/* The annotation list panel: the image's annotations (colour, id, label, score), each with an
 * eye that hides or shows it; a row click selects (Shift adds), hovering highlights its mask;
 * the selection bar's count and the buttons that need a selection. Only the states the review
 * filter shows are listed (panels/review.js); a predicted or rejected one says so.
 */
import { annotationColour, rgbCss } from "../colours.js";

export class AnnotationList {
  /** @param {object} ctx the page: {S, $, select (the select tool)}. */
  constructor(ctx) {
    this.ctx = ctx;
    this.S = ctx.S;
    this.list = ctx.$("ov-anns");
    ctx.S.subscribe((topics) => { if (topics.has("anns") || topics.has("selection") || topics.has("colours")) this.render(); });
  }

  row(a) {
    const S = this.S;
    const li = document.createElement("li");
    li.dataset.id = a.id;
    const st = a.state || "accepted";
    li.className = (S.selection.has(a.id) ? "selected " : "") + (a.hidden ? "hidden-ann " : "") + `st-${st}`;
    const score = a.score == null ? "" : a.score.toFixed(2);
    const tag = st === "accepted" ? "" : `<span class="state" title="${st === "predicted" ? "a machine's guess, to review" : "rejected: left out of every export"}">${st}</span>`;
    li.innerHTML = `<span class="swatch"></span><span class="name"></span>${tag}<span class="count">${score}</span>` +
      `<button class="eye" title="Hide / show this annotation">${a.hidden ? "◌" : "●"}</button>`;
    const sw = li.querySelector(".swatch"), colour = rgbCss(annotationColour(this.S, a), 1);
    if (st === "predicted") sw.style.border = `2px dashed ${colour}`; // hollow: a guess
    else sw.style.background = st === "rejected" ? "#999" : colour;
    li.querySelector(".name").textContent = `${a.id} ${a.label}`;
    li.addEventListener("click", (e) => {
      if (e.target.classList.contains("eye")) {
        a.hidden = !a.hidden;
        S.changed("anns");
        return;
      }
      this.ctx.select.select(a.id, e.shiftKey);
    });
    li.addEventListener("mouseenter", () => { S.hover = a.id; S.changed("hover"); });
    li.addEventListener("mouseleave", () => { if (S.hover === a.id) { S.hover = null; S.changed("hover"); } });
    return li;
  }

  render() {
    const S = this.S, $ = this.ctx.$;
    this.list.textContent = "";
    for (const a of S.anns.values()) if (S.passesFilter(a)) this.list.appendChild(this.row(a));
    $("ov-ann-count").textContent = S.anns.size;
    const n = S.selection.size;
    $("ov-sel-count").textContent = n ? `${n} selected` : "No selection";
    $("ov-reprompt").disabled = n !== 1;
    $("ov-merge").disabled = n < 2;
    $("ov-subtract").disabled = n < 2;
    $("ov-intersect").disabled = n < 2;
    $("ov-delete").disabled = n < 1;
    $("ov-relabel").disabled = n < 1;
  }
}
