/* Masks as COCO run lengths: decode, paint, hit test.
 *
 * A mask is COCO's compressed RLE (pycocotools' `rleToString`): column-major run lengths of an
 * (h, w) binary mask, starting with a run of zeros, each count LEB128-like in 6-bit characters
 * offset by 48, counts after the second stored as differences to the one two before.
 */

/**
 * COCO compressed RLE string -> run lengths (pycocotools' rleFrString).
 * @param {string} s the `counts` string of a COCO RLE.
 * @returns {number[]} run lengths, zeros first, column-major.
 */
export function rleCounts(s) {
  const counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, more = 1, c = 0;
    while (more) {
      c = s.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20;
      p++;
      k++;
      if (!more && c & 0x10) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

/**
 * Paint a column-major run-length mask of size (h, w) into RGBA pixels (opaque `rgb`).
 * @param {Uint8ClampedArray} data RGBA bytes of an (h, w) image, row-major, 4 per pixel.
 * @param {number} w width in pixels.
 * @param {number} h height in pixels.
 * @param {number[]} counts run lengths from {@link rleCounts}.
 * @param {number[]} rgb [r, g, b], 0..255.
 */
export function paintRuns(data, w, h, counts, rgb) {
  let pos = 0;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i];
    if (i & 1) {
      let x = (pos / h) | 0, y = pos - x * h;
      for (let k = 0; k < n; k++) {
        const o = (y * w + x) * 4;
        data[o] = rgb[0]; data[o + 1] = rgb[1]; data[o + 2] = rgb[2]; data[o + 3] = 255;
        if (++y === h) { y = 0; x++; }
      }
    }
    pos += n;
  }
}

/**
 * Whether pixel (x, y) is inside a column-major run-length mask of height h.
 * @param {number[]} counts run lengths from {@link rleCounts}.
 * @param {number} h the mask's height in pixels.
 * @param {number} x column (integer pixel).
 * @param {number} y row (integer pixel).
 * @returns {boolean}
 */
export function runsContain(counts, h, x, y) {
  const target = x * h + y;
  let pos = 0;
  for (let i = 0; i < counts.length; i++) {
    pos += counts[i];
    if (target < pos) return (i & 1) === 1;
  }
  return false;
}
