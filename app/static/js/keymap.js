/* The page's shortcuts: ONE table, from which the key handler, the buttons' and fields' shortcut
 * hints and the `?` overlay are made (no other place lists them). README's "Keyboard shortcuts"
 * table shows the same rows (tests/test_keymap.py checks it).
 *
 * Each row is one line of the overlay: `key` (what to press) and `help` (what it does), and
 * `bind`, the keys the handler binds, each {keys, action, mods?, hint?, on?, hold?}:
 *   keys    KeyboardEvent.key values that trigger `action` (an entry of the page's actions)
 *   mods    "none" (default: no Ctrl, Meta or Alt), "ctrl" (Ctrl or Meta held, not Shift),
 *           "ctrl+shift" (Ctrl or Meta, and Shift) or "any"
 *   hint    the short name of the key in titles and messages
 *   on      buttons (their data-act) and fields ("#id") whose title or placeholder get " (hint)"
 *   hold    the action runs on key down with `true` and on key up with `false`
 * A row's own `on` gets " (key)" instead. Rows without `bind` are the pointer's (see pointer.js).
 *
 * The table is strict JSON between the KEYMAP markers (tests/test_keymap.py reads it with
 * json.loads): double quotes, no comments, no trailing commas.
 */

// KEYMAP BEGIN
export const KEYMAP = [
  {"key": "click / right click / Shift + click", "help": "positive point / negative point / negative point"},
  {"key": "drag", "help": "box"},
  {"key": "Enter", "help": "accept the mask with the label; with no mask pending, relabel the selection; in the label field, the first Enter takes the highlighted row and the next one accepts",
   "bind": [{"keys": ["Enter"], "action": "enter", "hint": "Enter", "on": ["accept", "found-accept"]}]},
  {"key": "C", "help": "next of SAM's three candidate masks for the prompt (subpart, part, whole)",
   "bind": [{"keys": ["c", "C"], "action": "candidate", "hint": "C", "on": ["candidate"]}]},
  {"key": "Ctrl + Z", "help": "undo: while a mask is pending, its last prompt step or stroke; else the image's last saved change (accept, delete, merge, relabel, edit, everything, find all, review), kept in the store",
   "bind": [{"keys": ["z", "Z"], "mods": "ctrl", "action": "undo", "hint": "Ctrl+Z", "on": ["undo"]}]},
  {"key": "Ctrl + Shift + Z or Ctrl + Y", "help": "redo: the prompt step undone last, else the image's last undone change (a new change clears what is left to redo)",
   "bind": [{"keys": ["z", "Z"], "mods": "ctrl+shift", "action": "redo", "hint": "Ctrl+Shift+Z", "on": ["redo"]},
            {"keys": ["y", "Y"], "mods": "ctrl", "action": "redo", "hint": "Ctrl+Y"}]},
  {"key": "Esc", "help": "clear the prompt, then the selection",
   "bind": [{"keys": ["Escape"], "action": "escape", "hint": "Esc", "on": ["clear", "found-reject"]}]},
  {"key": "D or → / A or ←", "help": "next / previous image",
   "bind": [{"keys": ["d", "D", "ArrowRight"], "action": "next", "hint": "D, →", "on": ["next"]},
            {"keys": ["a", "A", "ArrowLeft"], "action": "prev", "hint": "A, ←", "on": ["prev"]}]},
  {"key": "1 – 5", "help": "pick label suggestion 1 – 5",
   "bind": [{"keys": ["1", "2", "3", "4", "5"], "action": "pick-suggestion", "hint": "1–5"}]},
  {"key": "Ctrl + 1 – 9, 0", "help": "use class 1 – 10 of the class panel as the label (its first ten, by id)",
   "bind": [{"keys": ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"], "mods": "ctrl", "action": "pick-class", "hint": "Ctrl+1–9, 0"}]},
  {"key": "/", "help": "search labels",
   "bind": [{"keys": ["/"], "action": "search-labels", "hint": "/", "on": ["#ov-label"]}]},
  {"key": "N / V", "help": "segment tool / select tool",
   "bind": [{"keys": ["n", "N"], "action": "tool-segment", "hint": "N", "on": ["tool-segment"]},
            {"keys": ["v", "V"], "action": "tool-select", "hint": "V", "on": ["tool-select"]}]},
  {"key": "B or Shift + B", "help": "brush tool (X-AnyLabeling's key): drag paints the pending mask, else the one selected annotation, else a new mask; Ctrl + drag or right drag erases; one stroke is one undo step",
   "bind": [{"keys": ["b", "B"], "action": "tool-brush", "hint": "B", "on": ["tool-brush"]}]},
  {"key": "[ / ]", "help": "brush smaller / larger (the cursor shows its size)",
   "bind": [{"keys": ["["], "action": "brush-smaller", "hint": "["},
            {"keys": ["]"], "action": "brush-larger", "hint": "]"}]},
  {"key": "P", "help": "polygon tool (X-AnyLabeling's key): click vertices, Enter adds the polygon, Shift + Enter cuts it out, Backspace removes the last vertex; with one annotation selected, drag its vertices, press an edge to add one, Alt + click (or Backspace over it) deletes one",
   "bind": [{"keys": ["p", "P"], "action": "tool-polygon", "hint": "P", "on": ["tool-polygon"]}]},
  {"key": "Delete (or Backspace)", "help": "delete the selection (with the polygon tool, Backspace removes a vertex instead)",
   "bind": [{"keys": ["Delete", "Backspace"], "action": "delete", "hint": "Delete", "on": ["delete"]}]},
  {"key": "R", "help": "re-prompt the selected annotation: its mask becomes the pending one, refined by clicks, replaced by Enter",
   "bind": [{"keys": ["r", "R"], "action": "reprompt", "hint": "R", "on": ["reprompt"]}]},
  {"key": "M", "help": "merge the selection",
   "bind": [{"keys": ["m", "M"], "action": "merge", "hint": "M", "on": ["merge"]}]},
  {"key": "E", "help": "everything (segment the whole image)",
   "bind": [{"keys": ["e", "E"], "action": "everything", "hint": "E", "on": ["everything"]}]},
  {"key": "T, then Enter", "help": "find all instances of the classes typed", "on": ["find"],
   "bind": [{"keys": ["t", "T"], "action": "find-focus", "hint": "T", "on": ["#ov-find"]}]},
  {"key": "Enter / Esc / click one (with candidates found)", "help": "accept all / reject all / reject that one"},
  {"key": "Tab / Shift + Tab", "help": "review (CVAT's next / previous object keys): select the next / previous predicted annotation and centre it; past the image's last, the next image with predictions. Fix it with the brush (B), polygon (P) or re-prompt (R): a fixed prediction is accepted",
   "bind": [{"keys": ["Tab"], "action": "review-step", "hint": "Tab", "on": ["review-next"]}]},
  {"key": "Y / X", "help": "review: accept / reject the selected annotations (a rejected one is hidden and left out of exports), then select the image's next prediction",
   "bind": [{"keys": ["y", "Y"], "action": "review-accept", "hint": "Y", "on": ["review-accept"]},
            {"keys": ["x", "X"], "action": "review-reject", "hint": "X", "on": ["review-reject"]}]},
  {"key": "Ctrl + Enter", "help": "review: accept every prediction of this image",
   "bind": [{"keys": ["Enter"], "mods": "ctrl", "action": "review-accept-image", "hint": "Ctrl+Enter", "on": ["review-accept-image"]}]},
  {"key": "H", "help": "hide / show masks",
   "bind": [{"keys": ["h", "H"], "action": "toggle-masks", "hint": "H", "on": ["toggle-masks"]}]},
  {"key": "F", "help": "fit the image to the window",
   "bind": [{"keys": ["f", "F"], "action": "fit", "hint": "F", "on": ["fit"]}]},
  {"key": "wheel / Space + drag, middle drag", "help": "zoom at the cursor / pan",
   "bind": [{"keys": [" "], "mods": "any", "action": "pan-key", "hold": true}]},
  {"key": "?", "help": "this list",
   "bind": [{"keys": ["?"], "action": "help", "hint": "?", "on": ["help"]}]}
];
// KEYMAP END

/** Every binding of the table, in its order. */
export const BINDINGS = KEYMAP.flatMap((row) => row.bind || []);

/** The binding of `action` (its first one), or undefined. */
function bindingOf(action) { return BINDINGS.find((b) => b.action === action); }

/** The short name of `action`'s key, as titles and messages name it ("Enter", "V", "1–5"). */
export function hint(action) { return bindingOf(action).hint; }

/** The keys (KeyboardEvent.key values) bound to `action`, in the table's order. */
export function keysOf(action) { return bindingOf(action).keys; }

/** The overlay's rows: [{key, help}] (README's "key" and "action" columns). */
export function helpRows() { return KEYMAP.map((row) => ({ key: row.key, help: row.help })); }

/**
 * The binding a key event triggers, or undefined.
 * @param {KeyboardEvent} e
 */
export function bindingFor(e) {
  const ctrl = e.ctrlKey || e.metaKey;
  return BINDINGS.find((b) => {
    if (!b.keys.includes(e.key)) return false;
    const mods = b.mods || "none";
    if (mods === "any") return true;
    if (mods === "ctrl") return ctrl && !e.shiftKey;
    if (mods === "ctrl+shift") return ctrl && e.shiftKey;
    return !ctrl && !e.altKey;
  });
}

/**
 * Append the shortcut hints to the buttons' titles and the fields' placeholders under `root`.
 * @param {Element} root the page's root element.
 */
export function applyHints(root) {
  const add = (target, text) => {
    const sel = target.startsWith("#") ? target : `[data-act="${target}"]`;
    for (const el of root.querySelectorAll(sel)) {
      if (el.tagName === "INPUT") el.placeholder += ` (${text})`;
      else el.title += ` (${text})`;
    }
  };
  for (const row of KEYMAP) {
    for (const target of row.on || []) add(target, row.key);
    for (const b of row.bind || []) for (const target of b.on || []) add(target, b.hint);
  }
}

/** Whether a key pressed in this element is the element's own (typing), not a shortcut. */
function typing(t) {
  if (!t || !(t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) {
    return false;
  }
  return t.type !== "checkbox" && t.type !== "range";
}

/**
 * Listen for the table's keys on `window` while `root` is in the document.
 *
 * An action is called with (event, true) on key down, and for a `hold` binding with
 * (event, false) on key up; an action that returns false leaves the key to the browser
 * (default not prevented).
 * @param {Element} root the page's root element.
 * @param {Object<string, Function>} actions action name -> function.
 */
export function listenKeys(root, actions) {
  window.addEventListener("keydown", (e) => {
    if (!root.isConnected || typing(e.target)) return;
    const b = bindingFor(e);
    if (b && actions[b.action](e, true) !== false) e.preventDefault();
  });
  window.addEventListener("keyup", (e) => {
    const b = BINDINGS.find((x) => x.hold && x.keys.includes(e.key));
    if (b) actions[b.action](e, false);
  });
}
