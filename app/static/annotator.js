/* The annotation page's canvas tool: plain JavaScript, no build step.
 *
 * The image travels once per image; a click sends one point (or a box) to /ovsam/api and gets
 * back only the new mask (COCO compressed RLE at the displayed resolution, its outline, labels
 * and scores). Everything is drawn here: the photo, accepted masks (a colour per class), the
 * pending mask, points and box, with zoom around the cursor and pan.
 *
 * Coordinates: "display" pixels are those of the image as sent (the original scaled by
 * `scale` <= 1); "screen" pixels are CSS pixels of the canvas; screen = display * z + t.
 * Prompts go to the server in original pixels: original = display * (W / dw).
 *
 * Timing marks for benchmarks/browser.py: window.OVSAM_PERF.clicks / .switches hold, per
 * click or image switch, the mouse or key event time and the time of the first frame that
 * shows the result; .labels, per mask whose labels came after it (the mask before the labels:
 * on a photo whose CLIP pass is still running), the click's time and the frame showing the
 * suggestions (performance.now() clock).
 */
(function () {
  "use strict";
  const API = "/ovsam/api/";
  const PALETTE = [
    [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
    [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128], [220, 190, 255],
    [170, 110, 40], [255, 250, 200], [128, 0, 0], [170, 255, 195], [128, 128, 0], [255, 215, 180],
    [0, 0, 128], [128, 128, 128],
  ];
  const PENDING = [30, 144, 255];
  const DRAG_PX = 5; // a press that moves further than this is a box, not a click
  const PERF = (window.OVSAM_PERF = window.OVSAM_PERF || { clicks: [], switches: [], labels: [] });

  // ---------------------------------------------------------------- masks
  /** COCO compressed RLE string -> run lengths (pycocotools' rleFrString). */
  function rleCounts(s) {
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

  /** Paint a column-major run-length mask of size (h, w) into RGBA pixels. */
  function paintRuns(data, w, h, counts, rgb) {
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

  /** Whether display pixel (x, y) is inside a column-major run-length mask of height h. */
  function runsContain(counts, h, x, y) {
    const target = x * h + y;
    let pos = 0;
    for (let i = 0; i < counts.length; i++) {
      pos += counts[i];
      if (target < pos) return (i & 1) === 1;
    }
    return false;
  }

  function colourOf(label) {
    let hsh = 0;
    for (let i = 0; i < label.length; i++) hsh = (hsh * 31 + label.charCodeAt(i)) | 0;
    return PALETTE[Math.abs(hsh) % PALETTE.length];
  }

  function rgbCss(rgb, a) { return `rgba(${rgb[0]},${rgb[1]},${rgb[2]},${a})`; }

  function newSessionId() {
    const k = "ovsam-session";
    let id = sessionStorage.getItem(k);
    if (!id) {
      id = (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) + Date.now());
      sessionStorage.setItem(k, id);
    }
    return id;
  }

  // ---------------------------------------------------------------- the tool
  function mount(root) {
    const $ = (id) => root.querySelector("#" + id);
    const canvas = $("ov-canvas"), stage = $("ov-stage"), ctx = canvas.getContext("2d");
    const S = {
      session: newSessionId(),
      images: [], current: null, img: null, W: 0, H: 0, dw: 0, dh: 0,
      z: 1, tx: 0, ty: 0, fitted: false,
      anns: new Map(), accLayer: document.createElement("canvas"), accDirty: true,
      pending: null, pendLayer: document.createElement("canvas"), prompt: { points: [], labels: [], box: null },
      selection: new Set(), hover: null, tool: "segment", showMasks: true, opacity: 0.45,
      suggestions: [], labelLocked: false, results: [], active: -1, token: null, labelsPending: false, labelsFetch: null,
      found: null, foundLayer: document.createElement("canvas"), foundDirty: true, foundHover: null, findUnavailable: null,
      press: null, drag: null, pan: null, space: false, queue: Promise.resolve(), busy: false,
    };
    window.OVSAM_STATE = S;

    function status(text) { $("ov-status").textContent = text; }

    async function call(path, body) {
      const opts = body === undefined ? {} : {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ session: S.session, ...body }),
      };
      const res = await fetch(API + path, opts);
      const data = await res.json().catch(() => ({ error: res.statusText }));
      if (!res.ok) throw new Error(data.error || data.detail || res.statusText);
      return data;
    }

    function enqueue(fn) {
      // prompts are applied one after another, in the order the user gave them
      S.queue = S.queue.then(fn).catch((e) => status("⚠ " + e.message));
      return S.queue;
    }

    // ------------------------------------------------------------ view
    function resize() {
      const dpr = window.devicePixelRatio || 1;
      const w = Math.max(1, stage.clientWidth), h = Math.max(1, stage.clientHeight);
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
      if (!S.fitted) fit();
      draw();
    }

    function fit() {
      if (!S.dw) return;
      const w = stage.clientWidth, h = stage.clientHeight;
      S.z = Math.min(w / S.dw, h / S.dh) * 0.98;
      S.tx = (w - S.dw * S.z) / 2;
      S.ty = (h - S.dh * S.z) / 2;
      S.fitted = w > 0 && h > 0;
    }

    function toDisplay(sx, sy) { return [(sx - S.tx) / S.z, (sy - S.ty) / S.z]; }
    function toOriginal(dx, dy) { return [dx * (S.W / S.dw), dy * (S.H / S.dh)]; }
    function fromOriginal(x, y) { return [x * (S.dw / S.W) * S.z + S.tx, y * (S.dh / S.H) * S.z + S.ty]; }
    function eventXY(e) { const r = canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; }

    function rebuildAccepted() {
      const L = S.accLayer;
      if (L.width !== S.dw || L.height !== S.dh) { L.width = S.dw; L.height = S.dh; }
      const lctx = L.getContext("2d");
      const im = lctx.createImageData(S.dw, S.dh);
      for (const a of S.anns.values()) if (!a.hidden) paintRuns(im.data, S.dw, S.dh, a.counts, colourOf(a.label));
      lctx.putImageData(im, 0, 0);
      S.accDirty = false;
    }

    function setPending(mask) {
      S.pending = mask;
      if (!mask) return;
      const L = S.pendLayer;
      if (L.width !== S.dw || L.height !== S.dh) { L.width = S.dw; L.height = S.dh; }
      const lctx = L.getContext("2d");
      // one pixel buffer per image size, cleared per click rather than allocated (a click's hot path)
      if (!S.pendPixels || S.pendPixels.width !== S.dw || S.pendPixels.height !== S.dh) {
        S.pendPixels = lctx.createImageData(S.dw, S.dh);
      } else {
        S.pendPixels.data.fill(0);
      }
      paintRuns(S.pendPixels.data, S.dw, S.dh, rleCounts(mask.rle.counts), PENDING);
      lctx.putImageData(S.pendPixels, 0, 0);
    }

    function strokeOutline(outline, css, width) {
      ctx.beginPath();
      for (const poly of outline) {
        for (let i = 0; i < poly.length; i += 2) {
          const x = poly[i] + 0.5, y = poly[i + 1] + 0.5;
          if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
        }
        ctx.closePath();
      }
      ctx.strokeStyle = css;
      ctx.lineWidth = width / S.z;
      ctx.stroke();
    }

    function draw() {
      const dpr = window.devicePixelRatio || 1;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.fillStyle = "#1f1f23";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      if (!S.img) return;
      ctx.setTransform(dpr * S.z, 0, 0, dpr * S.z, dpr * S.tx, dpr * S.ty);
      ctx.imageSmoothingEnabled = S.z < 1;
      ctx.drawImage(S.img, 0, 0, S.dw, S.dh);
      ctx.imageSmoothingEnabled = false; // masks stay crisp at any zoom
      if (S.showMasks) {
        if (S.accDirty) rebuildAccepted();
        ctx.globalAlpha = S.opacity;
        ctx.drawImage(S.accLayer, 0, 0);
        ctx.globalAlpha = 1;
        for (const a of S.anns.values()) {
          if (a.hidden) continue;
          const sel = S.selection.has(a.id), hov = S.hover === a.id;
          strokeOutline(a.outline, sel ? "#ffffff" : hov ? "#ffff00" : rgbCss(colourOf(a.label), 0.95), sel || hov ? 3 : 1.5);
        }
      } else {
        for (const id of S.selection) { const a = S.anns.get(id); if (a) strokeOutline(a.outline, "#ffffff", 3); }
      }
      if (S.found) {
        if (S.foundDirty) rebuildFound();
        ctx.globalAlpha = 0.55;
        ctx.drawImage(S.foundLayer, 0, 0);
        ctx.globalAlpha = 1;
        ctx.setLineDash([6 / S.z, 4 / S.z]);
        for (const f of S.found.items.values()) {
          const hov = S.foundHover === f.index;
          strokeOutline(f.outline, hov ? "#ffff00" : rgbCss(colourOf(f.label), 1), hov ? 3 : 2);
        }
        ctx.setLineDash([]);
      }
      if (S.pending) {
        ctx.globalAlpha = 0.5;
        ctx.drawImage(S.pendLayer, 0, 0);
        ctx.globalAlpha = 1;
        strokeOutline(S.pending.outline, rgbCss(PENDING, 1), 2);
      }
      // screen-space decorations: labels, box, points
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      if (S.showMasks) {
        ctx.font = "12px system-ui, sans-serif";
        ctx.lineWidth = 3;
        for (const a of S.anns.values()) {
          if (a.hidden) continue;
          const [x, y] = fromOriginal(a.bbox[0], a.bbox[1]);
          const text = `${a.id} ${a.label}`;
          ctx.strokeStyle = "rgba(0,0,0,0.85)";
          ctx.strokeText(text, x + 2, Math.max(12, y - 3));
          ctx.fillStyle = "#fff";
          ctx.fillText(text, x + 2, Math.max(12, y - 3));
        }
      }
      const box = S.drag ? S.drag.box : S.prompt.box;
      if (box) {
        const [x0, y0] = fromOriginal(box[0], box[1]), [x1, y1] = fromOriginal(box[2], box[3]);
        ctx.strokeStyle = "#ffff00";
        ctx.lineWidth = 2;
        ctx.setLineDash(S.drag ? [6, 4] : []);
        ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
        ctx.setLineDash([]);
      }
      S.prompt.points.forEach((p, i) => {
        const [x, y] = fromOriginal(p[0], p[1]);
        ctx.beginPath();
        ctx.arc(x, y, 5.5, 0, 2 * Math.PI);
        ctx.fillStyle = S.prompt.labels[i] === 1 ? "#16c60c" : "#e81123";
        ctx.fill();
        ctx.strokeStyle = "#fff";
        ctx.lineWidth = 1.5;
        ctx.stroke();
      });
    }

    /** Draw, then call done(frame time) once the frame showing it is painted. */
    function drawThen(done) {
      draw();
      const drawn = performance.now();
      requestAnimationFrame(() => setTimeout(() => done(drawn, performance.now()), 0));
    }

    // ------------------------------------------------------------ side panels
    function fillImageRow(li, im) {
      li.classList.toggle("current", im.key === S.current);
      li.querySelector(".tick").textContent = im.done ? "✔" : "";
      li.querySelector(".count").textContent = im.n;
      li.title = `${im.key}: ${im.n} annotation(s)${im.done ? ", done" : ""}`;
    }

    function imageRow(key) {
      return $("ov-list").querySelector(`li[data-key="${CSS.escape(key)}"]`);
    }

    function renderProgress() {
      $("ov-progress").textContent = `${S.images.filter((i) => i.done).length} / ${S.images.length}`;
      const cur = S.images.find((i) => i.key === S.current);
      $("ov-done").checked = !!(cur && cur.done);
    }

    /** The whole list (start, filter, a new list from the server). */
    function renderImages() {
      const f = $("ov-filter").value.trim().toLowerCase();
      const list = $("ov-list");
      list.textContent = "";
      for (const im of S.images) {
        if (f && !im.key.toLowerCase().includes(f)) continue;
        const li = document.createElement("li");
        li.dataset.key = im.key;
        li.innerHTML = '<span class="tick"></span><span class="name"></span><span class="count"></span>';
        li.querySelector(".name").textContent = im.key;
        fillImageRow(li, im);
        li.addEventListener("click", (e) => openImage(im.key, e.timeStamp));
        list.appendChild(li);
      }
      renderProgress();
    }

    /** Only the rows of images an edit changed. */
    function updateImages(entries) {
      for (const e of entries || []) {
        const i = S.images.findIndex((im) => im.key === e.key);
        if (i < 0) continue;
        S.images[i] = e;
        const li = imageRow(e.key);
        if (li) fillImageRow(li, e);
      }
      renderProgress();
    }

    /** Move the "current" mark from the image shown before to ``key``. */
    function markCurrent(previous) {
      for (const k of [previous, S.current]) {
        const im = k && S.images.find((i) => i.key === k), li = k && imageRow(k);
        if (im && li) fillImageRow(li, im);
      }
      renderProgress();
    }

    function renderAnns() {
      const list = $("ov-anns");
      list.textContent = "";
      for (const a of S.anns.values()) {
        const li = document.createElement("li");
        li.dataset.id = a.id;
        li.className = (S.selection.has(a.id) ? "selected " : "") + (a.hidden ? "hidden-ann" : "");
        const score = a.score == null ? "" : a.score.toFixed(2);
        li.innerHTML = `<span class="swatch"></span><span class="name"></span><span class="count">${score}</span>` +
          `<button class="eye" title="Hide / show this annotation">${a.hidden ? "◌" : "●"}</button>`;
        li.querySelector(".swatch").style.background = rgbCss(colourOf(a.label), 1);
        li.querySelector(".name").textContent = `${a.id} ${a.label}`;
        li.addEventListener("click", (e) => {
          if (e.target.classList.contains("eye")) {
            a.hidden = !a.hidden; S.accDirty = true; renderAnns(); draw(); return;
          }
          select(a.id, e.shiftKey);
        });
        li.addEventListener("mouseenter", () => { S.hover = a.id; draw(); });
        li.addEventListener("mouseleave", () => { if (S.hover === a.id) { S.hover = null; draw(); } });
        list.appendChild(li);
      }
      $("ov-ann-count").textContent = S.anns.size;
      const n = S.selection.size;
      $("ov-sel-count").textContent = n ? `${n} selected` : "No selection";
      $("ov-merge").disabled = n < 2;
      $("ov-delete").disabled = n < 1;
      $("ov-relabel").disabled = n < 1;
    }

    function renderSuggestions() {
      const box = $("ov-suggestions");
      box.textContent = "";
      if (S.labelsPending) {
        const wait = document.createElement("span");
        wait.className = "ov-hint";
        wait.textContent = "Labels coming… (Enter accepts with the label typed)";
        box.appendChild(wait);
      }
      S.suggestions.slice(0, 5).forEach((s, i) => {
        const b = document.createElement("button");
        b.innerHTML = `<span class="k">${i + 1}</span>`;
        b.appendChild(document.createTextNode(`${s.name} ${s.score.toFixed(2)}`));
        b.title = `Use this label (${i + 1})`;
        b.addEventListener("click", () => pickLabel(s.name));
        box.appendChild(b);
      });
    }

    function addAnn(a) {
      a.counts = rleCounts(a.rle.counts);
      a.hidden = false;
      S.anns.set(a.id, a);
      S.accDirty = true;
    }

    function setImages(images) { if (images) { S.images = images; renderImages(); } }

    // ------------------------------------------------------------ images
    async function openImage(key, t0) {
      t0 = t0 || performance.now();
      if (!key) return;
      status(`Opening ${key}…`);
      try {
        const img = new Image();
        img.src = API + "image?key=" + encodeURIComponent(key);
        // the photo travels while the server runs SAM's encoder (open); CLIP's pass follows there
        const decoded = img.decode().then(() => null, (e) => e);
        const info = await call("open", { key }); // its reason first (a corrupt file says so)
        const failed = await decoded;
        if (failed) throw failed;
        const previous = S.current;
        Object.assign(S, {
          current: key, img, W: info.width, H: info.height, dw: img.naturalWidth, dh: img.naturalHeight,
          pending: null, prompt: { points: [], labels: [], box: null }, suggestions: [], fitted: false,
          found: null, foundHover: null, token: null, labelsPending: false,
        });
        renderFound();
        S.selection.clear();
        S.anns.clear();
        S.accDirty = true; // the layer is rebuilt for this photo, even one with no annotations
        info.annotations.forEach(addAnn);
        fit();
        markCurrent(previous);
        renderAnns();
        renderSuggestions();
        drawThen((drawn, frame) => {
          PERF.switches.push({ key, t0, frame, cached: info.cached, server_ms: info.ready_ms });
          const how = info.cached ? "embeddings ready" : `embedded in ${(info.ready_ms / 1000).toFixed(2)} s`;
          status(`${key}: ${info.width}×${info.height}, ${how}; shown ${Math.round(frame - t0)} ms after the request. Click an object.`);
        });
      } catch (e) {
        status(`⚠ ${key}: ${e.message}`);
      }
    }

    function step(delta, t0) {
      const keys = S.images.map((i) => i.key);
      if (!keys.length) return;
      const i = Math.max(0, keys.indexOf(S.current));
      openImage(keys[(i + delta + keys.length) % keys.length], t0 || performance.now());
    }

    function nextNotDone() {
      const keys = S.images.map((i) => i.key), i = keys.indexOf(S.current);
      const order = keys.slice(i + 1).concat(keys.slice(0, i + 1));
      const next = order.find((k) => !S.images.find((im) => im.key === k).done);
      if (next) openImage(next, performance.now()); else status("Every image is marked done.");
    }

    // ------------------------------------------------------------ prompts
    function showResult(r, t0, kind) {
      const arrived = performance.now();
      S.prompt = r.prompt;
      setPending(r.mask);
      S.token = r.token || null;
      S.labelsPending = !!(r.mask && r.labels_pending);
      if (r.mask) {
        S.suggestions = r.labels || [];
        if (S.suggestions.length && !S.labelLocked) $("ov-label").value = S.suggestions[0].name;
      } else {
        S.suggestions = [];
      }
      if (S.labelsPending && !S.labelLocked) $("ov-label").value = ""; // not the last mask's label
      renderSuggestions();
      if (S.labelsPending) fetchLabels(S.current, r.token, t0);
      drawThen((drawn, frame) => {
        if (kind && t0) PERF.clicks.push({ kind, t0, arrived, drawn, frame, engine_ms: r.engine_ms });
        if (r.mask) {
          const ms = t0 ? ` ${Math.round(frame - t0)} ms in all (engine ${Math.round(r.engine_ms || 0)} ms)` : "";
          status(`Mask: ${r.area} px, predicted IoU ${r.predicted_iou.toFixed(3)};${ms}. Enter accepts; click to refine.`);
        } else {
          status("No prompt. Click an object, or drag a box.");
        }
      });
    }

    function fetchLabels(key, token, t0) {
      // not queued: the next click must not wait for this mask's labels; Accept awaits S.labelsFetch
      S.labelsFetch = call("suggest", { key }).then((d) => {
        if (key !== S.current || d.token !== S.token || !S.pending) return; // another mask by now
        S.labelsPending = false;
        S.suggestions = d.labels;
        if (S.suggestions.length && !S.labelLocked) $("ov-label").value = S.suggestions[0].name;
        renderSuggestions();
        if (t0 && d.token === token) requestAnimationFrame((frame) => PERF.labels.push({ t0, frame }));
      }).catch((e) => status("⚠ labels: " + e.message));
    }

    function sendPoint(dx, dy, positive, t0) {
      if (!S.current) return;
      const [x, y] = toOriginal(dx, dy);
      if (x < 0 || y < 0 || x > S.W || y > S.H) { status("Click inside the image."); return; }
      const key = S.current;
      enqueue(async () => {
        if (key !== S.current) return; // the user moved to another image meanwhile
        const r = await call("click", { key, x, y, positive });
        if (key === S.current) showResult(r, t0, positive ? "positive" : "negative");
      });
    }

    function sendBox(box, t0) {
      const key = S.current;
      enqueue(async () => {
        if (key !== S.current) return;
        const r = await call("box", { key, box });
        if (key === S.current) showResult(r, t0, "box");
      });
    }

    function undo() { enqueue(async () => showResult(await call("undo", {}))); }
    function clearPrompt() { S.labelLocked = false; enqueue(async () => showResult(await call("clear", {}))); }

    function accept() {
      enqueue(async () => {
        if (!S.pending) { status("Nothing to accept: click an object first."); return; }
        if (S.labelsPending && !S.labelLocked) { // nothing typed: accept with the best label once it is here
          status("Accepting with the best label once the labels are here…");
          await S.labelsFetch; // the request fetchLabels made for this mask fills the label field
        }
        const label = $("ov-label").value.trim();
        if (!label) { status("Choose a label first: suggestions (1–5) or the label search (/)."); $("ov-label").focus(); return; }
        const r = await call("accept", { key: S.current, label });
        addAnn(r.annotation);
        updateImages(r.changed_images);
        S.pending = null;
        S.prompt = { points: [], labels: [], box: null };
        S.suggestions = [];
        S.token = null;
        S.labelsPending = false;
        S.labelLocked = false;
        renderSuggestions();
        renderAnns();
        draw();
        status(`✅ Saved annotation ${r.annotation.id} '${r.annotation.label}' (${r.annotation.area} px).`);
      });
    }

    // ------------------------------------------------------------ selection
    function select(id, add) {
      if (!add) S.selection.clear();
      if (id != null) {
        if (add && S.selection.has(id)) S.selection.delete(id); else S.selection.add(id);
      }
      renderAnns();
      draw();
    }

    function hitTest(dx, dy) {
      const x = Math.floor(dx), y = Math.floor(dy);
      if (x < 0 || y < 0 || x >= S.dw || y >= S.dh) return null;
      const anns = [...S.anns.values()].reverse(); // the one drawn on top first
      const hit = anns.find((a) => !a.hidden && runsContain(a.counts, S.dh, x, y));
      return hit ? hit.id : null;
    }

    function selectedIds() { return [...S.selection]; }

    function deleteSelection() {
      const ids = selectedIds();
      if (!ids.length) { status("Select annotations first (V, then click them)."); return; }
      enqueue(async () => {
        const r = await call("delete", { ids });
        ids.forEach((i) => S.anns.delete(i));
        S.selection.clear();
        S.accDirty = true;
        updateImages(r.changed_images);
        renderAnns();
        draw();
        status(`Deleted ${ids.length} annotation(s).`);
      });
    }

    function relabelSelection() {
      const ids = selectedIds(), label = $("ov-label").value.trim();
      if (!ids.length || !label) { status("Select annotations and choose a label first."); return; }
      enqueue(async () => {
        const r = await call("relabel", { ids, label });
        r.annotations.forEach((a) => { const old = S.anns.get(a.id); if (old) { old.label = a.label; old.score = a.score; } });
        S.accDirty = true;
        renderAnns();
        draw();
        status(`${ids.length} annotation(s) are now '${label}'.`);
      });
    }

    function mergeSelection() {
      const ids = selectedIds();
      if (ids.length < 2) { status("Select two or more annotations to merge (shift + click adds)."); return; }
      const label = S.labelLocked ? $("ov-label").value.trim() : "";
      enqueue(async () => {
        const r = await call("merge", { ids, label });
        r.removed.forEach((i) => S.anns.delete(i));
        addAnn(r.annotation);
        S.selection = new Set([r.annotation.id]);
        updateImages(r.changed_images);
        renderAnns();
        draw();
        status(`Merged ${ids.join(", ")} into annotation ${r.annotation.id} ('${r.annotation.label}').`);
      });
    }

    // ------------------------------------------------------------ everything
    function everything() {
      if (!S.current || S.busy) return;
      const method = $("ov-method").value;
      S.busy = true;
      $("ov-everything").disabled = true;
      const poll = pollProgress(`Segmenting everything (${method})…`);
      enqueue(async () => {
        try {
          const r = await call("everything", { method });
          r.annotations.forEach(addAnn);
          updateImages(r.changed_images);
          renderAnns();
          draw();
          status(`Everything (${method}): ${r.patches} SAM patches → ${r.annotations.length} annotations (${r.how}) in ${r.seconds} s.`);
        } finally {
          clearInterval(poll);
          S.busy = false;
          $("ov-everything").disabled = false;
        }
      });
    }

    /** Show the server's progress of a long pass in the status line until the returned timer is cleared. */
    function pollProgress(what) {
      status(what);
      return setInterval(async () => {
        try {
          const p = await call("progress?session=" + encodeURIComponent(S.session));
          if (p.progress != null) status(`${what} ${Math.round(p.progress * 100)} %`);
        } catch (e) { /* the next poll retries */ }
      }, 500);
    }

    // ------------------------------------------------------------ find all
    function findAll() {
      if (!S.current || S.busy) return;
      if (S.findUnavailable) { status("⚠ " + S.findUnavailable); return; }
      const classes = $("ov-find").value.trim();
      if (!classes) { status("Name the classes to find, comma-separated (T), e.g. car, person."); $("ov-find").focus(); return; }
      const tv = $("ov-find-threshold").value.trim(), threshold = tv === "" ? null : Number(tv);
      const method = $("ov-method").value, key = S.current;
      S.busy = true;
      $("ov-find-btn").disabled = true;
      const poll = pollProgress(`Finding ${classes}…`);
      enqueue(async () => {
        try {
          const r = await call("find", { key, classes, threshold, method });
          if (key !== S.current) return;
          setFound(key, r.found);
          const names = r.classes.map((c) => c.name).join(", ");
          const free = r.classes.filter((c) => !c.in_vocabulary).map((c) => c.name);
          status(`Found ${r.found.length} (${names}) in ${r.seconds} s` +
            (r.reused_patches ? ", patches reused" : "") + (free.length ? `; free text: ${free.join(", ")}` : "") +
            (r.already_annotated ? `; ${r.already_annotated} already annotated, not offered` : "") +
            (r.found.length ? ". Enter accepts all; click one to reject it." : ".") + (r.note ? ` (${r.note})` : ""));
        } finally {
          clearInterval(poll);
          S.busy = false;
          $("ov-find-btn").disabled = false;
        }
      });
    }

    function setFound(key, items) {
      S.found = items.length ? { key, items: new Map(items.map((f) => [f.index, { ...f, counts: rleCounts(f.rle.counts) }])) } : null;
      S.foundHover = null;
      S.foundDirty = true;
      renderFound();
      draw();
    }

    function rebuildFound() {
      const L = S.foundLayer;
      if (L.width !== S.dw || L.height !== S.dh) { L.width = S.dw; L.height = S.dh; }
      const lctx = L.getContext("2d");
      const im = lctx.createImageData(S.dw, S.dh);
      for (const f of S.found.items.values()) paintRuns(im.data, S.dw, S.dh, f.counts, colourOf(f.label));
      lctx.putImageData(im, 0, 0);
      S.foundDirty = false;
    }

    function renderFound() {
      $("ov-found").hidden = !S.found;
      const list = $("ov-found-list");
      list.textContent = "";
      if (!S.found) return;
      $("ov-found-count").textContent = `${S.found.items.size} found`;
      for (const f of S.found.items.values()) {
        const li = document.createElement("li");
        li.dataset.index = f.index;
        li.innerHTML = '<span class="swatch"></span><span class="name"></span><span class="count"></span>' +
          '<button class="ok" title="Accept this one">✓</button><button class="no" title="Reject this one">✕</button>';
        li.querySelector(".swatch").style.background = rgbCss(colourOf(f.label), 1);
        li.querySelector(".name").textContent = f.label;
        li.querySelector(".count").textContent = f.score < 0.01 ? f.score.toPrecision(2) : f.score.toFixed(2);
        li.querySelector(".ok").addEventListener("click", () => acceptFound([f.index]));
        li.querySelector(".no").addEventListener("click", () => rejectFound([f.index]));
        li.addEventListener("mouseenter", () => { S.foundHover = f.index; draw(); });
        li.addEventListener("mouseleave", () => { if (S.foundHover === f.index) { S.foundHover = null; draw(); } });
        list.appendChild(li);
      }
    }

    /** Drop candidates from the page (rejected, or stored as annotations). */
    function dropFound(indices) {
      if (!S.found) return;
      indices.forEach((i) => S.found.items.delete(i));
      if (!S.found.items.size) S.found = null;
      S.foundDirty = true;
      renderFound();
      draw();
    }

    function rejectFound(indices) {
      if (!S.found) return;
      indices = indices || [...S.found.items.keys()];
      const names = indices.map((i) => S.found.items.get(i)).filter(Boolean).map((f) => f.label);
      dropFound(indices);
      status(`Rejected ${names.length === 1 ? names[0] : names.length + " candidates"}.`);
    }

    function acceptFound(indices) {
      if (!S.found) return;
      const key = S.found.key;
      indices = indices || [...S.found.items.keys()];
      enqueue(async () => {
        const r = await call("find_accept", { key, indices });
        if (key === S.current) {
          r.annotations.forEach(addAnn);
          dropFound(r.indices);
          renderAnns();
          draw();
        }
        updateImages(r.changed_images);
        status(`✅ Saved ${r.annotations.length} annotation(s)` + (S.found ? `; ${S.found.items.size} candidate(s) left.` : "."));
      });
    }

    /** The found candidate under display pixel (x, y): the smallest one holding it. */
    function hitFound(dx, dy) {
      const x = Math.floor(dx), y = Math.floor(dy);
      if (!S.found || x < 0 || y < 0 || x >= S.dw || y >= S.dh) return null;
      let best = null;
      for (const f of S.found.items.values()) {
        if (runsContain(f.counts, S.dh, x, y) && (!best || f.area < best.area)) best = f;
      }
      return best ? best.index : null;
    }

    // ------------------------------------------------------------ labels
    let searchTimer = null, searchSeq = 0;
    function searchLabels() {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(async () => {
        const q = $("ov-label").value.trim(), seq = ++searchSeq;
        if (!q) { showResults([], q); return; }
        try {
          const r = await call("labels?q=" + encodeURIComponent(q));
          if (seq === searchSeq) showResults(r.results, q);
        } catch (e) { status("⚠ " + e.message); }
      }, 60);
    }

    /** Search now (no debounce); resolves once the results for the field's text are shown. */
    async function searchNow() {
      clearTimeout(searchTimer);
      const q = $("ov-label").value.trim(), seq = ++searchSeq;
      const r = q ? await call("labels?q=" + encodeURIComponent(q)) : { results: [] };
      if (seq === searchSeq) showResults(r.results, q);
    }

    function showResults(results, query) {
      S.results = results;
      S.resultsFor = query;
      S.active = results.length ? 0 : -1;
      const ul = $("ov-label-results");
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
        li.addEventListener("mousedown", (e) => { e.preventDefault(); pickLabel(r.name); });
        ul.appendChild(li);
      });
      ul.hidden = !results.length || document.activeElement !== $("ov-label");
    }

    function moveActive(d) {
      if (!S.results.length) return;
      S.active = (S.active + d + S.results.length) % S.results.length;
      [...$("ov-label-results").children].forEach((li, i) => li.classList.toggle("active", i === S.active));
    }

    function pickLabel(name) {
      $("ov-label").value = name;
      S.labelLocked = true;
      $("ov-label-results").hidden = true;
      status(`Label: ${name}. Enter accepts.`);
    }

    // ------------------------------------------------------------ mouse
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
    canvas.addEventListener("mousedown", (e) => {
      const [sx, sy] = eventXY(e);
      if (e.button === 1 || (e.button === 0 && S.space)) {
        S.pan = { sx, sy, tx: S.tx, ty: S.ty };
        stage.classList.add("panning");
        e.preventDefault();
        return;
      }
      S.press = { sx, sy, button: e.button, shift: e.shiftKey };
    });
    window.addEventListener("mousemove", (e) => {
      if (!S.img) return;
      const [sx, sy] = eventXY(e);
      if (S.pan) {
        S.tx = S.pan.tx + sx - S.pan.sx;
        S.ty = S.pan.ty + sy - S.pan.sy;
        draw();
        return;
      }
      const p = S.press;
      if (p && p.button === 0 && S.tool === "segment" && (S.drag || Math.hypot(sx - p.sx, sy - p.sy) > DRAG_PX)) {
        const [x0, y0] = toOriginal(...toDisplay(p.sx, p.sy)), [x1, y1] = toOriginal(...toDisplay(sx, sy));
        S.drag = { box: [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)] };
        draw();
      }
    });
    window.addEventListener("mouseup", (e) => {
      if (S.pan) { S.pan = null; stage.classList.remove("panning"); return; }
      const p = S.press;
      S.press = null;
      if (!p || !S.img) return;
      const t0 = e.timeStamp || performance.now(); // the mouse event's own time
      if (S.drag) {
        const box = S.drag.box;
        S.drag = null;
        const cl = [Math.max(0, box[0]), Math.max(0, box[1]), Math.min(S.W, box[2]), Math.min(S.H, box[3])];
        if (cl[2] - cl[0] >= 1 && cl[3] - cl[1] >= 1) sendBox(cl, t0); else draw();
        return;
      }
      const [sx, sy] = eventXY(e);
      const [dx, dy] = toDisplay(sx, sy);
      if (S.tool === "select") {
        if (p.button === 0) select(hitTest(dx, dy), p.shift);
        return;
      }
      if (p.button === 0 && !p.shift && S.found && !S.pending) {
        const hit = hitFound(dx, dy);
        if (hit != null) { rejectFound([hit]); return; }
      }
      if (p.button === 0) sendPoint(dx, dy, !p.shift, t0);
      else if (p.button === 2) sendPoint(dx, dy, false, t0);
    });
    canvas.addEventListener("wheel", (e) => {
      if (!S.img) return;
      e.preventDefault();
      const [sx, sy] = eventXY(e);
      const z = Math.min(64, Math.max(0.05, S.z * Math.exp(-e.deltaY * 0.0015)));
      S.tx = sx - (sx - S.tx) * (z / S.z);
      S.ty = sy - (sy - S.ty) * (z / S.z);
      S.z = z;
      draw();
    }, { passive: false });

    // ------------------------------------------------------------ keyboard
    function setTool(tool) {
      S.tool = tool;
      $("ov-tool-segment").classList.toggle("on", tool === "segment");
      $("ov-tool-select").classList.toggle("on", tool === "select");
      stage.classList.toggle("select", tool === "select");
    }

    function toggleMasks() {
      S.showMasks = !S.showMasks;
      $("ov-toggle-masks").textContent = S.showMasks ? "Hide masks" : "Show masks";
      draw();
    }

    function toggleHelp(show) {
      const h = $("ov-help");
      h.hidden = show === undefined ? !h.hidden : !show;
    }

    const label = $("ov-label");
    label.addEventListener("input", () => { S.labelLocked = true; searchLabels(); });
    label.addEventListener("focus", () => { if (label.value) searchLabels(); });
    label.addEventListener("blur", () => { $("ov-label-results").hidden = true; });
    label.addEventListener("keydown", (e) => {
      if (e.key === "ArrowDown") { moveActive(1); e.preventDefault(); }
      else if (e.key === "ArrowUp") { moveActive(-1); e.preventDefault(); }
      else if (e.key === "Escape") { $("ov-label-results").hidden = true; label.blur(); }
      else if (e.key === "Enter") {
        e.preventDefault();
        if (!e.shiftKey && label.value.trim() && S.resultsFor !== label.value.trim()) {
          searchNow().catch((err) => status("⚠ " + err.message)); // results of an older query: never pick from them
          return;
        }
        const open = !$("ov-label-results").hidden && S.active >= 0 && S.results[S.active];
        if (open && S.results[S.active].name.toLowerCase() !== label.value.trim().toLowerCase() &&
            !e.shiftKey) {
          pickLabel(S.results[S.active].name);  // first Enter takes the highlighted name
        } else {
          pickLabel(label.value.trim());         // a name not in the vocabulary is a new category
          label.blur();
          if (S.pending) accept(); else if (S.selection.size) relabelSelection();
        }
      }
    });
    $("ov-filter").addEventListener("input", renderImages);
    $("ov-done").addEventListener("change", (e) => {
      if (!S.current) return;
      const done = e.target.checked;
      enqueue(async () => { setImages((await call("done", { key: S.current, done })).images); });
    });
    $("ov-opacity").addEventListener("input", (e) => { S.opacity = e.target.value / 100; draw(); });

    window.addEventListener("keydown", (e) => {
      if (!root.isConnected) return;
      const t = e.target;
      if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) {
        if (t.type !== "checkbox" && t.type !== "range") return;
      }
      if (e.key === " ") { S.space = true; e.preventDefault(); return; }
      const k = e.key, ctrl = e.ctrlKey || e.metaKey;
      const t0 = e.timeStamp || performance.now();
      let handled = true;
      if (ctrl && (k === "z" || k === "Z")) undo();
      else if (ctrl || e.altKey) handled = false;
      else if (k === "?") toggleHelp();
      else if (k === "Escape") {
        if (!$("ov-help").hidden) toggleHelp(false);
        else if (S.pending || S.prompt.points.length || S.prompt.box) clearPrompt();
        else if (S.found) rejectFound();
        else select(null, false);
      } else if (k === "Enter") {
        if (S.pending) accept();
        else if (S.found) acceptFound();
        else if (S.selection.size) relabelSelection();
        else accept();
      }
      else if (k === "t" || k === "T") $("ov-find").focus();
      else if (k === "d" || k === "D" || k === "ArrowRight") step(1, t0);
      else if (k === "a" || k === "A" || k === "ArrowLeft") step(-1, t0);
      else if (k >= "1" && k <= "5") {
        const s = S.suggestions[Number(k) - 1];
        if (s) pickLabel(s.name); else handled = false;
      } else if (k === "/") label.focus();
      else if (k === "Delete" || k === "Backspace") deleteSelection();
      else if (k === "e" || k === "E") everything();
      else if (k === "h" || k === "H") toggleMasks();
      else if (k === "m" || k === "M") mergeSelection();
      else if (k === "n" || k === "N") setTool("segment");
      else if (k === "v" || k === "V") setTool("select");
      else if (k === "f" || k === "F") { fit(); draw(); }
      else handled = false;
      if (handled) e.preventDefault();
    });
    window.addEventListener("keyup", (e) => { if (e.key === " ") S.space = false; });

    // ------------------------------------------------------------ buttons
    const actions = {
      prev: () => step(-1), next: () => step(1), "next-todo": nextNotDone,
      "tool-segment": () => setTool("segment"), "tool-select": () => setTool("select"),
      undo, clear: clearPrompt, fit: () => { fit(); draw(); }, everything, "toggle-masks": toggleMasks,
      help: () => toggleHelp(), accept, relabel: relabelSelection, merge: mergeSelection, delete: deleteSelection,
      find: findAll, "found-accept": () => acceptFound(), "found-reject": () => rejectFound(),
    };
    $("ov-find").addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); $("ov-find").blur(); findAll(); }
      else if (e.key === "Escape") $("ov-find").blur();
    });
    root.querySelectorAll("[data-act]").forEach((b) =>
      b.addEventListener("click", () => { actions[b.dataset.act](); b.blur(); }));
    $("ov-help").addEventListener("click", () => toggleHelp(false));

    new ResizeObserver(resize).observe(stage);

    // ------------------------------------------------------------ start
    (async () => {
      try {
        const st = await call("state?session=" + encodeURIComponent(S.session));
        const sel = $("ov-method");
        st.methods.forEach((m) => {
          const o = document.createElement("option");
          o.value = m.id;
          o.textContent = m.title.split(":")[0];
          o.title = m.title;
          sel.appendChild(o);
        });
        label.placeholder = `Label: search ${st.vocab_size.toLocaleString()} classes or type a new one ( / )`;
        setImages(st.images);
        S.findUnavailable = st.find_unavailable;
        const notice = $("ov-notice");
        notice.textContent = (st.notes || []).map((n) => "⚠ " + n).join("\n");
        notice.hidden = !(st.notes || []).length;
        if (st.find_unavailable) $("ov-find-btn").title = st.find_unavailable;
        if (!st.has_labels) status(`Label suggestions are off: ${st.labels_unavailable}`);
        await openImage(st.current);
        if (!S.current) {  // unreadable: the first image after it that opens
          const keys = st.images.map((i) => i.key), i = keys.indexOf(st.current);
          for (const k of keys.slice(i + 1).concat(keys.slice(0, i))) {
            await openImage(k);
            if (S.current) break;
          }
        }
        if (!st.has_labels) {
          const s = $("ov-status");
          s.textContent += `  (Label suggestions are off: ${st.labels_unavailable})`;
        }
      } catch (e) {
        status("⚠ " + e.message);
      }
    })();
  }

  window.OVSAM = { mount, rleCounts, paintRuns, runsContain };
})();
