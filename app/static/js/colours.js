/* The colours masks are drawn in: one per class name (a hash into a 20-colour palette). */

const PALETTE = [
  [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
  [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [220, 190, 255],
  [170, 110, 40], [255, 250, 200], [128, 0, 0], [170, 255, 195], [128, 128, 0], [255, 215, 180],
  [0, 0, 128], [128, 128, 128],
];

/** The pending mask's colour, [r, g, b]. */
export const PENDING = [30, 144, 255];

/**
 * The colour of a class: the same name always gets the same colour.
 * @param {string} label class name.
 * @returns {number[]} [r, g, b], 0..255.
 */
export function colourOf(label) {
  let hsh = 0;
  for (let i = 0; i < label.length; i++) hsh = (hsh * 31 + label.charCodeAt(i)) | 0;
  return PALETTE[Math.abs(hsh) % PALETTE.length];
}

/**
 * CSS colour text of an [r, g, b] colour with alpha `a` (0..1).
 * @param {number[]} rgb
 * @param {number} a
 * @returns {string}
 */
export function rgbCss(rgb, a) { return `rgba(${rgb[0]},${rgb[1]},${rgb[2]},${a})`; }
