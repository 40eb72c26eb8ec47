/* Timing marks for benchmarks/browser.py and tests (performance.now() clock, ms):
 * window.OVSAM_PERF.clicks / .switches hold, per click or image switch, the mouse or key event
 * time (`t0`) and the time of the first frame that shows the result (`frame`); .labels, per
 * mask whose labels came after it (the mask before the labels: on a photo whose CLIP pass is
 * still running), the click's time and the frame showing the suggestions.
 *
 * clicks: {kind: "positive" | "negative" | "box", t0, arrived, drawn, frame, engine_ms}
 * switches: {key, t0, frame, cached, server_ms}
 * labels: {t0, frame}
 * brush: per pointer move of a brush stroke, the event's time and the time its segment was
 *   painted on the overlay: {t0, painted}
 */

/** @type {{clicks: object[], switches: object[], labels: object[], brush: object[]}} */
export const PERF = (window.OVSAM_PERF = window.OVSAM_PERF || { clicks: [], switches: [], labels: [], brush: [] });
