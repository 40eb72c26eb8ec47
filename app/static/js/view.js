/* Zoom, pan and the one transform between the screen and the image.
 *
 * Three frames:
 * - "screen": CSS pixels of the canvas, origin at its top left;
 * - "display": pixels of the image as sent to the page (dw x dh, the original scaled by <= 1);
 * - "original": pixels of the image file (W x H); prompts travel to the server in these.
 * screen = display * z + t; original = display * (W / dw, H / dh).
 *
 * Every function takes the view `v`: {W, H, dw, dh, z, tx, ty, fitted, moved} (the page state
 * holds these fields) and changes only those fields. `moved`: the user zoomed or panned since the
 * last fit; a resized stage fits the image again unless so, else keeps the image point at the
 * stage's centre there, at the same zoom (resized).
 */

const ZOOM_MIN = 0.05, ZOOM_MAX = 64, WHEEL_RATE = 0.0015;

/**
 * Screen -> display pixels.
 * @returns {number[]} [dx, dy].
 */
export function toDisplay(v, sx, sy) { return [(sx - v.tx) / v.z, (sy - v.ty) / v.z]; }

/**
 * Display -> original pixels.
 * @returns {number[]} [x, y].
 */
export function toOriginal(v, dx, dy) { return [dx * (v.W / v.dw), dy * (v.H / v.dh)]; }

/**
 * Original -> screen pixels.
 * @returns {number[]} [sx, sy].
 */
export function fromOriginal(v, x, y) { return [x * (v.dw / v.W) * v.z + v.tx, y * (v.dh / v.H) * v.z + v.ty]; }

/**
 * Screen -> original pixels.
 * @returns {number[]} [x, y].
 */
export function screenToOriginal(v, sx, sy) { return toOriginal(v, ...toDisplay(v, sx, sy)); }

/**
 * Fit the image into a stage of (w, h) CSS pixels, centred, with a 2 % margin. `fitted` says
 * whether the stage had a size (a hidden stage is fitted again once it has one).
 */
export function fit(v, w, h) {
  if (!v.dw) return;
  v.z = Math.min(w / v.dw, h / v.dh) * 0.98;
  v.tx = (w - v.dw * v.z) / 2;
  v.ty = (h - v.dh * v.z) / 2;
  v.fitted = w > 0 && h > 0;
  v.moved = false;
}

/**
 * The stage went from (w0, h0) to (w, h) CSS pixels: fit again when the user has not zoomed or
 * panned since the last fit, else keep the image point at the stage's centre at its centre
 * (same zoom).
 */
export function resized(v, w0, h0, w, h) {
  if (!v.dw) return;
  if (!v.moved || !v.fitted || !(w0 > 0 && h0 > 0)) { fit(v, w, h); return; }
  v.tx += (w - w0) / 2;
  v.ty += (h - h0) / 2;
}

/** Zoom by a wheel step `deltaY` keeping screen point (sx, sy) over the same image pixel. */
export function zoomAt(v, sx, sy, deltaY) {
  const z = Math.min(ZOOM_MAX, Math.max(ZOOM_MIN, v.z * Math.exp(-deltaY * WHEEL_RATE)));
  v.tx = sx - (sx - v.tx) * (z / v.z);
  v.ty = sy - (sy - v.ty) * (z / v.z);
  v.z = z;
  v.moved = true;
}

/** Pan: the translation `start` had ({tx, ty}) moved by a drag of (ddx, ddy) screen pixels. */
export function panFrom(v, start, ddx, ddy) {
  v.tx = start.tx + ddx;
  v.ty = start.ty + ddy;
  v.moved = true;
}

/** Whether display pixel (dx, dy) lies on the image; the integer pixel [x, y] when it does, else null. */
export function displayPixel(v, dx, dy) {
  const x = Math.floor(dx), y = Math.floor(dy);
  return x < 0 || y < 0 || x >= v.dw || y >= v.dh ? null : [x, y];
}

/** The canvas-to-screen matrix of display pixels for a device pixel ratio: [a, b, c, d, e, f]. */
export function displayMatrix(v, dpr) { return [dpr * v.z, 0, 0, dpr * v.z, dpr * v.tx, dpr * v.ty]; }
