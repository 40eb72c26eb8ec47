/* The colours masks are drawn in.
 *
 * Per class: the project's classes get distinct slots of PALETTE (setClasses: the class panel's
 * list, in id order, each at its name's hash slot or the next free one), other names their
 * hash. PALETTE is built on Kelly's 22 colours of maximum contrast: those with chroma (max - min
 * channel) >= 100 and HSL lightness 0.25..0.75 (no white, black, grey, buff, olive; the orange
 * yellow, greenish yellow, yellowish pink and purplish red left out: twins of the yellow,
 * orange and red), plus Kelly's purple, violet, light blue and purplish pink at full saturation
 * (the originals are greyish or pale) and a teal Kelly lacks: 13 hues, none near the grey
 * canvas or a photo's neutrals (tests/test_browser_polish.py checks the values).
 * Per annotation ("each"): hues a golden angle (137.5°) apart by annotation id, at a fixed
 * saturation and lightness, so neighbouring ids never look alike. "auto" (the default mode)
 * colours per class unless every annotation of the image has the same label (say `object`, as
 * Everything names them without CLIP), then per annotation. The mode is kept in localStorage.
 */

export const PALETTE = [
  [243, 195, 0], [166, 34, 195], [243, 132, 0], [66, 156, 240], [190, 0, 50], [0, 136, 86],
  [233, 99, 143], [0, 103, 165], [86, 45, 210], [20, 184, 184], [136, 45, 23], [141, 182, 0],
  [226, 88, 34],
];

/** The pending mask's colour, [r, g, b]. */
export const PENDING = [30, 144, 255];

/** The colour modes: "auto", "class", "instance". */
export const MODES = ["auto", "class", "instance"];
const STORE_KEY = "ovsam-colour-by";

/** The palette slot of each of the project's classes (setClasses); others hash their name. */
let slots = new Map();

function hashSlot(label) {
  let hsh = 0;
  for (let i = 0; i < label.length; i++) hsh = (hsh * 31 + label.charCodeAt(i)) | 0;
  return Math.abs(hsh) % PALETTE.length;
}

/**
 * Give the project's classes distinct colours while there are no more than the palette holds:
 * in id order, each class takes its name's hash slot, else the next free one (linear probing),
 * so a class keeps its colour when classes with higher ids come. @param {{name: string, id:
 * number}[]} classes @returns {boolean} whether any class's colour changed.
 */
export function setClasses(classes) {
  const next = new Map(), used = new Set();
  for (const c of [...classes].sort((a, b) => a.id - b.id)) {
    if (used.size === PALETTE.length) used.clear(); // more classes than colours: a second round
    let k = hashSlot(c.name);
    while (used.has(k)) k = (k + 1) % PALETTE.length;
    used.add(k);
    next.set(c.name, k);
  }
  const changed = next.size !== slots.size || [...next].some(([n, k]) => slots.get(n) !== k);
  slots = next;
  return changed;
}

/**
 * The colour of a class: its slot among the project's classes (setClasses), else its name's hash.
 * @param {string} label class name.
 * @returns {number[]} [r, g, b], 0..255.
 */
export function colourOf(label) {
  return PALETTE[slots.has(label) ? slots.get(label) : hashSlot(label)];
}

/**
 * HSL (h degrees, s and l 0..1) to [r, g, b] 0..255.
 * @returns {number[]}
 */
export function hslToRgb(h, s, l) {
  const k = (n) => (n + h / 30) % 12, a = s * Math.min(l, 1 - l);
  const f = (n) => l - a * Math.max(-1, Math.min(k(n) - 3, 9 - k(n), 1));
  return [0, 8, 4].map((n) => Math.round(255 * f(n)));
}

/**
 * The colour of one annotation in the "instance" mode: hue id × 137.5° (the golden angle),
 * saturation 0.8, lightness 0.55 (never grey, pale or dark).
 * @param {number} id annotation id (or a candidate's index).
 * @returns {number[]} [r, g, b].
 */
export function instanceColour(id) { return hslToRgb((id * 137.508) % 360, 0.8, 0.55); }

/** The colour mode kept in this browser ("auto" when none or an unknown one). */
export function savedMode() {
  try {
    const m = localStorage.getItem(STORE_KEY);
    return MODES.includes(m) ? m : "auto";
  } catch (e) { return "auto"; }
}

/** Keep colour mode `mode` in this browser. */
export function saveMode(mode) {
  try { localStorage.setItem(STORE_KEY, mode); } catch (e) { /* private mode: not kept */ }
}

/**
 * Whether annotations are coloured one by one: the "instance" mode, or "auto" with at least
 * two annotations all of one label. @param {string} mode @param {Iterable<{label: string}>} anns
 */
export function perInstance(mode, anns) {
  if (mode === "instance") return true;
  if (mode !== "auto") return false;
  let first = null, n = 0;
  for (const a of anns) {
    if (first === null) first = a.label; else if (a.label !== first) return false;
    n++;
  }
  return n >= 2;
}

/**
 * The colour annotation `a` is drawn in on the page state `S` (its `colourBy` mode, its annotations).
 * @returns {number[]} [r, g, b].
 */
export function annotationColour(S, a) {
  return perInstance(S.colourBy || "auto", S.anns.values()) ? instanceColour(a.id) : colourOf(a.label);
}

/**
 * CSS colour text of an [r, g, b] colour with alpha `a` (0..1).
 * @param {number[]} rgb
 * @param {number} a
 * @returns {string}
 */
export function rgbCss(rgb, a) { return `rgba(${rgb[0]},${rgb[1]},${rgb[2]},${a})`; }
