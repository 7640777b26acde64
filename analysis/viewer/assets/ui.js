// The viewer's page: controls, views and the test API (window.ncaViewer).
// Drawing uses a 2D canvas only (no WebGL/WebGPU needed): the CA runs on the CPU in
// JavaScript (docs/viewer.md says why), so every browser with JavaScript can show it.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let P;
  try {
    P = JSON.parse($("nca-payload").textContent);
  } catch (e) {
    document.body.insertAdjacentHTML("afterbegin", `<p style="color:#a00">viewer data unreadable: ${e}</p>`);
    return;
  }
  const M = P.model;
  const eng = new NCAEngine(M);
  const C = eng.C, H = eng.H, W = eng.W;
  const pca = P.pca; // null when no PCA could be fitted (P.pca_note says why)
  const pcComp = pca ? pca.components.map((r) => Float64Array.from(r)) : []; // [k][F] over hidden channels
  const pcMean = pca ? Float64Array.from(pca.mean) : null;
  const pcScale = pca ? Float64Array.from(pca.scale) : null;
  const chMean = Float64Array.from(P.channel_means);
  const off = pca ? pca.offset : 4;

  $("title").textContent = P.name;
  $("runtime").textContent = `· ${H}x${W} grid, ${C} channels, ${M.hidden} hidden units · runtime: JavaScript on the CPU (2D canvas, no WebGL needed)`;
  if (!pca) $("notice").textContent = `no PCA views: ${P.pca_note}`;
  $("about").innerHTML =
    `<p>Erase: the article's damage (cells in the disc set to zero). Knockouts follow ` +
    `<code>analysis.causal.interventions.ablate</code> at the "state" point: the component of every cell's state along the ` +
    `direction is set to 0 (zero) or to its mean over the alive cells of an intact rollout (mean).</p>` +
    (pca ? `<p>PCs: PCA of the ${pca.features} features of alive cells (alpha &gt; ${M.alive_threshold}) over ` +
      `steps ${pca.steps.join(", ")} of ${(pca.rollouts || 1) > 1 ? pca.rollouts + " rollouts" : "a rollout"} from the seed; explained variance ` +
      pca.explained_variance_ratio.map((v) => (100 * v).toFixed(1) + "%").join(", ") + ".</p>" : "");

  // ---- canvas ---------------------------------------------------------------------------
  const board = $("board");
  const scale = Math.max(2, Math.floor(504 / Math.max(H, W)));
  board.width = W;
  board.height = H;
  board.style.width = W * scale + "px";
  board.style.height = H * scale + "px";
  const ctx = board.getContext("2d");
  const img = ctx.createImageData(W, H);

  // Diverging map (ColorBrewer RdBu, reversed: blue negative, white 0, red positive) and a
  // sequential one (viridis stops) for magnitudes.
  const RDBU = [[5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240], [247, 247, 247],
    [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43], [103, 0, 31]];
  const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142], [31, 158, 137],
    [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];
  function cmap(stops, u) {
    u = Math.min(1, Math.max(0, u)) * (stops.length - 1);
    const i = Math.min(stops.length - 2, Math.floor(u)), f = u - i, a = stops[i], b = stops[i + 1];
    return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
  }
  function drawLegend(name, stops, lo, hi) {
    const lc = $("legendbar").getContext("2d");
    if (!stops) {
      lc.clearRect(0, 0, 256, 12);
      $("legendname").textContent = name;
      $("lo").textContent = "";
      $("hi").textContent = "";
      return;
    }
    for (let i = 0; i < 256; i++) {
      const c = cmap(stops, i / 255);
      lc.fillStyle = `rgb(${c[0] | 0},${c[1] | 0},${c[2] | 0})`;
      lc.fillRect(i, 0, 1, 12);
    }
    $("legendname").textContent = name + " ";
    $("lo").textContent = lo.toPrecision(3);
    $("hi").textContent = hi.toPrecision(3);
  }

  // ---- views ----------------------------------------------------------------------------
  const views = [["rgba_white", "RGBA on white"], ["rgba_checker", "RGBA on checkerboard"]];
  for (let k = 4; k < C; k++) views.push([`ch${k}`, `hidden channel ${k}`]);
  for (let k = 0; k < 4; k++) views.push([`ch${k}`, `channel ${k} (${"RGBA"[k]})`]);
  pcComp.forEach((_, j) => views.push([`pc${j}`, `PC ${j + 1} of the hidden state` +
    ` (${(100 * pca.explained_variance_ratio[j]).toFixed(1)}%)`]));
  views.push(["update", "update magnitude |dx|"], ["fire", "fire mask"], ["alive", "alive mask"]);
  for (const [v, label] of views) $("view").insertAdjacentHTML("beforeend", `<option value="${v}">${label}</option>`);
  let view = "rgba_white";

  function pcScore(o, j) {
    const comp = pcComp[j];
    let s = 0;
    for (let f = 0; f < comp.length; f++) s += ((eng.x[o + off + f] - pcMean[f]) / pcScale[f]) * comp[f];
    return s;
  }

  function render() {
    const d = img.data, x = eng.x;
    const ALIVE_GREY = 230;
    if (view === "rgba_white" || view === "rgba_checker") {
      for (let r = 0; r < H; r++)
        for (let c = 0; c < W; c++) {
          const o = eng.idx(r, c), q = 4 * (r * W + c);
          const a = Math.min(1, Math.max(0, x[o + 3]));
          const bg = view === "rgba_white" ? 1 : (((r >> 3) + (c >> 3)) & 1 ? 0.78 : 1);
          for (let k = 0; k < 3; k++) d[q + k] = 255 * Math.min(1, Math.max(0, Math.min(1, Math.max(0, x[o + k])) + bg * (1 - a)));
          d[q + 3] = 255;
        }
      drawLegend("", null);
    } else if (view === "fire" || view === "alive") {
      // fire: black = fired, white = did not, light grey = not alive before the step (its
      // update is discarded by the life mask, whatever the fire mask says)
      const m = view === "fire" ? eng.fire : eng.life;
      for (let i = 0; i < H * W; i++) {
        const v = view === "fire" && !eng.pre[i] ? ALIVE_GREY : m[i] ? 0 : 255;
        d[4 * i] = d[4 * i + 1] = d[4 * i + 2] = v;
        d[4 * i + 3] = 255;
      }
      drawLegend(view === "fire" ? "fire mask of the last step: black = fired (grey: not alive)" : "alive (life mask of the last step): black", null);
    } else {
      // scalar field per cell; NaN marks cells outside the field (dead, for PCs)
      const vals = new Float64Array(H * W);
      let lo = Infinity, hi = -Infinity;
      for (let r = 0; r < H; r++)
        for (let c = 0; c < W; c++) {
          const o = eng.idx(r, c), i = r * W + c;
          let v;
          if (view === "update") v = eng.upd[i];
          else if (view.startsWith("pc")) v = x[o + 3] > M.alive_threshold ? pcScore(o, +view.slice(2)) : NaN;
          else v = x[o + +view.slice(2)];
          vals[i] = v;
          if (v === v) {
            lo = Math.min(lo, v);
            hi = Math.max(hi, v);
          }
        }
      if (!(lo <= hi)) lo = hi = 0;
      const diverging = view !== "update";
      const m = diverging ? Math.max(Math.abs(lo), Math.abs(hi), 1e-6) : Math.max(hi, 1e-6);
      for (let i = 0; i < H * W; i++) {
        const v = vals[i];
        const col = v !== v ? [ALIVE_GREY, ALIVE_GREY, ALIVE_GREY] : diverging ? cmap(RDBU, 0.5 + (0.5 * v) / m) : cmap(VIRIDIS, v / m);
        d[4 * i] = col[0];
        d[4 * i + 1] = col[1];
        d[4 * i + 2] = col[2];
        d[4 * i + 3] = 255;
      }
      const name = $("view").selectedOptions[0].textContent + (diverging ? ", range ±max|v|" : "") + (view.startsWith("pc") ? " (grey: dead)" : "") + ":";
      drawLegend(name, diverging ? RDBU : VIRIDIS, diverging ? -m : 0, m);
      viewRange = [lo, hi];
    }
    ctx.putImageData(img, 0, 0);
    $("t").textContent = eng.t;
    if (firstFrameMs === null) firstFrameMs = performance.now();
  }
  let viewRange = null;
  let firstFrameMs = null;

  function setView(v) {
    view = v;
    $("view").value = v;
    eng.needUpdate = v === "update";
    render();
  }
  $("view").addEventListener("change", () => setView($("view").value));

  // ---- knockouts ------------------------------------------------------------------------
  const koBoxes = [];
  for (let k = 4; k < C; k++) koBoxes.push({ id: `ko-ch${k}`, label: `ch ${k}`, kind: "ch", k });
  pcComp.forEach((_, j) => koBoxes.push({ id: `ko-pc${j}`, label: `PC ${j + 1}`, kind: "pc", k: j }));
  let html = "<div>hidden channels:</div>";
  for (const b of koBoxes) {
    if (b.kind === "pc" && b.k === 0) html += "<div>PC directions:</div>";
    html += `<label><input type="checkbox" id="${b.id}"> ${b.label}</label> `;
  }
  $("ko").innerHTML = html;
  function updateKnockouts() {
    // Directions of the checked boxes in the C-channel state space, orthonormalised
    // together (Gram-Schmidt: a channel and a PC that overlaps it remain a projection),
    // each with its ablated value (0, or its mean over alive cells of an intact rollout).
    const mean = $("komode").value === "mean";
    const ds = [], vals = [];
    for (const b of koBoxes) {
      if (!$(b.id).checked) continue;
      const d = new Float64Array(C);
      if (b.kind === "ch") d[b.k] = 1;
      else pcComp[b.k].forEach((v, f) => (d[off + f] = v / pcScale[f]));
      ds.push(d);
    }
    const out = [];
    for (const d0 of ds) {
      const d = Float64Array.from(d0);
      for (const e of out) {
        let dot = 0;
        for (let k = 0; k < C; k++) dot += d[k] * e.dir[k];
        for (let k = 0; k < C; k++) d[k] -= dot * e.dir[k];
      }
      let n = 0;
      for (let k = 0; k < C; k++) n += d[k] * d[k];
      n = Math.sqrt(n);
      if (n < 1e-6) continue;
      for (let k = 0; k < C; k++) d[k] /= n;
      let m = 0;
      if (mean) for (let k = 0; k < C; k++) m += chMean[k] * d[k];
      out.push({ dir: d, value: m });
    }
    eng.knockouts = out;
    eng.applyKnockouts();
    render();
  }
  for (const b of koBoxes) $(b.id).addEventListener("change", updateKnockouts);
  $("komode").addEventListener("change", updateKnockouts);

  // ---- run loop -------------------------------------------------------------------------
  let playing = false;
  let sps = 0, lastT = performance.now(), lastFrame = lastT, lastStep = 0, carry = 0;
  function speedSetting() {
    const v = +$("speed").value;
    return v > 120 ? Infinity : v; // steps per second; the top of the slider: as fast as possible
  }
  function showSpeed() {
    const s = speedSetting();
    $("speedv").textContent = s === Infinity ? "max" : s + " steps/s";
  }
  showSpeed();
  $("speed").addEventListener("input", showSpeed);
  const MAX_STEPS_PER_FRAME = 200; // far above what 30 ms allow on a real clock
  function frame(now) {
    const dt = Math.min(0.25, Math.max(0, now - lastFrame) / 1000);
    lastFrame = now;
    if (playing) {
      const s = speedSetting();
      const budget = performance.now() + 30; // keep the page responsive: <= ~30 ms of steps per frame
      if (s === Infinity) {
        // Under a headless browser's virtual time the clock stands still inside a frame, and
        // this loop never ended (issue 25): go on only while the clock moves (a step takes
        // milliseconds, far above the clock's resolution), and at most MAX_STEPS_PER_FRAME.
        const t0 = performance.now();
        let n = 0;
        do eng.step(); while (++n < MAX_STEPS_PER_FRAME && performance.now() < budget && performance.now() > t0);
      } else {
        carry += s * dt;
        while (carry >= 1 && performance.now() < budget) {
          eng.step();
          carry -= 1;
        }
        carry = Math.min(carry, 1);
      }
      render();
    }
    const elapsed = (now - lastT) / 1000;
    if (elapsed > 0.5) {
      const inst = (eng.t - lastStep) / elapsed;
      sps = playing ? inst : 0;
      $("sps").textContent = sps.toFixed(1);
      lastStep = eng.t;
      lastT = now;
    } else if (!playing) lastT = now;
    requestAnimationFrame(frame);
  }
  let looping = false; // the requestAnimationFrame loop runs once started, until the page closes
  function startLoop() {
    if (looping) return;
    looping = true;
    lastFrame = lastT = performance.now();
    requestAnimationFrame(frame);
  }
  // (lastFrame: the previous frame, for the step budget; lastT/lastStep: the start of the
  // current 0.5-s window of the steps/s counter)
  function setPlaying(on) {
    playing = on;
    if (on) startLoop();
    $("play").textContent = on ? "Pause" : "Play";
    lastT = performance.now();
    lastStep = eng.t;
  }
  $("play").addEventListener("click", () => setPlaying(!playing));
  $("stepbtn").addEventListener("click", () => {
    setPlaying(false);
    eng.step();
    render();
  });
  function reset() {
    eng.seed = +$("seed").value | 0;
    eng.reset();
    eng.applyKnockouts();
    render();
  }
  $("reset").addEventListener("click", reset);
  $("seed").addEventListener("change", reset);
  function setAngle(deg) {
    eng.setAngle(deg);
    $("angle").value = deg;
    $("anglev").textContent = deg + "°";
  }
  $("angle").addEventListener("input", () => setAngle(+$("angle").value));
  $("radiusv").textContent = $("radius").value;
  $("radius").addEventListener("input", () => ($("radiusv").textContent = $("radius").value));

  // ---- brush ----------------------------------------------------------------------------
  let drawing = false;
  let lastBrush = null; // where the brush last painted, in cell coordinates (tests read it)
  function paint(ev) {
    const rect = board.getBoundingClientRect();
    const c = ((ev.clientX - rect.left) / rect.width) * W - 0.5;
    const r = ((ev.clientY - rect.top) / rect.height) * H - 0.5;
    const tool = document.querySelector('input[name="tool"]:checked').value;
    lastBrush = { tool, r, c, radius: +$("radius").value };
    if (tool === "erase") eng.erase(r, c, +$("radius").value);
    else eng.placeSeed(Math.round(r), Math.round(c));
    render();
  }
  board.addEventListener("pointerdown", (ev) => {
    drawing = true;
    board.setPointerCapture && board.setPointerCapture(ev.pointerId);
    paint(ev);
  });
  board.addEventListener("pointermove", (ev) => drawing && paint(ev));
  board.addEventListener("pointerup", () => (drawing = false));
  board.addEventListener("pointercancel", () => (drawing = false));

  // ---- test and scripting API -------------------------------------------------------------
  window.ncaViewer = {
    engine: eng,
    payload: P,
    render,
    setView,
    setAngle,
    setPlaying,
    reset,
    info: () => ({ t: eng.t, H, W, C, view, playing, sps, firstFrameMs, viewRange, angle: eng.angle, lastBrush,
      knockouts: eng.knockouts.map((k) => ({ dir: Array.from(k.dir), value: k.value })) }),
    getState: () => bytesToB64(new Uint8Array(eng.getState().buffer)),
    setState: (b64) => {
      eng.setState(b64ToF32(b64));
      render();
    },
    // Run n steps now (no drawing in between). masks: optional base64 uint8 [n, H, W] fire
    // masks (test mode). every: also return the state after every `every`-th step.
    run: (n, masksB64, every) => {
      const masks = masksB64 ? b64ToBytes(masksB64) : null;
      const keep = [];
      for (let i = 0; i < n; i++) {
        eng.step(masks ? masks.subarray(i * H * W, (i + 1) * H * W) : undefined);
        if (every && (i + 1) % every === 0) keep.push(eng.getState());
      }
      render();
      if (!every) return null;
      const all = new Float32Array(keep.length * H * W * C);
      keep.forEach((s, i) => all.set(s, i * H * W * C));
      return bytesToB64(new Uint8Array(all.buffer));
    },
    // Steps per second of the engine alone, over n steps from the current state.
    bench: (n) => {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) eng.step();
      const dt = (performance.now() - t0) / 1000;
      render();
      return n / dt;
    },
  };

  eng.seed = +$("seed").value | 0;
  eng.reset();
  setAngle(Math.round(M.angle_deg || 0));
  eng.setAngle(M.angle_deg || 0);
  render();
  // URL parameters (docs/viewer.md). ?steps=N: run N steps at once and show that state,
  // paused, with no animation loop, so the page goes idle: a headless browser's
  // --virtual-time-budget waits for idleness, which a perpetual requestAnimationFrame
  // loop never reaches (`chromium --headless --screenshot` hung). Play starts the loop.
  // ?paused: open paused (as scripts/viewer.py --paused).
  const Q = new URLSearchParams(location.search);
  if (Q.has("steps")) {
    const n = Math.max(0, parseInt(Q.get("steps"), 10) || 0);
    for (let i = 0; i < n; i++) eng.step();
    render();
  } else {
    startLoop();
    if (P.autoplay && !Q.has("paused")) setPlaying(true);
  }
})();
