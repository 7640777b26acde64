// The CA step of nca/model.py `step`, in plain JavaScript over typed arrays.
// (Mordvintsev et al., "Growing Neural Cellular Automata", Distill 2020.)
//
// State layout: a zero-bordered grid [(H+2) * (W+2) * C] float32, row-major, channels last,
// so every 3x3 neighbourhood reads without bounds checks; the border is the 'SAME' zero
// padding of the Sobel filters, and since alpha 0 never exceeds the alive threshold (> 0.1)
// it also plays the role of the max-pool's -inf padding.
//
// One step, as nca.model.step:
//   0. knockouts (the "state" hook of analysis.causal.interventions.ablate, every cell);
//   1. pre  = 3x3 max-pool(alpha) > threshold;
//   2. perception [x, kx*x, ky*x] per channel (identity, Sobel-x, Sobel-y / 8; rotated:
//      kx = c*sx - s*sy, ky = s*sx + c*sy), band order [id (C), kx (C), ky (C)];
//   3. dx = relu(p @ w1 + b1) @ w2 + b2;
//   4. x + dx * fire (fire: uniform <= fire_rate, or a mask given from Python in test mode);
//   5. post = 3x3 max-pool(alpha) > threshold; x * (pre & post);
//   6. knockouts again, so the state shown and read back satisfies them (the ablation is a
//      projection, so applying it again at step 0 of the next step changes nothing).
// The MLP runs only for cells that fire and have a pre-alive cell in their 3x3
// neighbourhood (as nca.model.fast_step): a fired cell that is not alive itself is zeroed
// by the life mask, but its updated alpha still enters its neighbours' post-step max-pool;
// a cell with no pre-alive neighbour cannot affect any cell that survives. While the
// update-magnitude view needs dx, it also runs for every pre-alive cell.
"use strict";

function b64ToBytes(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function bytesToB64(bytes) {
  let s = "";
  const CH = 0x8000;
  for (let i = 0; i < bytes.length; i += CH) s += String.fromCharCode.apply(null, bytes.subarray(i, i + CH));
  return btoa(s);
}

function b64ToF32(s) {
  const b = b64ToBytes(s);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

// A counter-based generator: the fire mask of step t depends only on (seed, t), like
// nca.model.step_key (prefix-consistent: reset + replay gives the same run). It is not
// JAX's threefry: the browser's fire masks differ from Python's unless given (test mode).
function hash32(a) {
  a = Math.imul(a ^ (a >>> 16), 0x7feb352d);
  a = Math.imul(a ^ (a >>> 15), 0x846ca68b);
  return (a ^ (a >>> 16)) >>> 0;
}

class NCAEngine {
  constructor(model) {
    const C = (this.C = model.channels);
    const Hd = (this.hidden = model.hidden);
    this.fireRate = model.fire_rate;
    this.threshold = model.alive_threshold;
    const w1 = b64ToF32(model.w1); // [3C, hidden]
    this.w1T = new Float32Array(3 * C * Hd); // [hidden, 3C]: one contiguous row per unit
    for (let i = 0; i < 3 * C; i++) for (let j = 0; j < Hd; j++) this.w1T[j * 3 * C + i] = w1[i * Hd + j];
    this.b1 = b64ToF32(model.b1);
    this.w2 = b64ToF32(model.w2); // [hidden, C]
    this.b2 = b64ToF32(model.b2);
    this.p = new Float64Array(3 * C);
    this.d = new Float64Array(C);
    this.setAngle(model.angle_deg || 0);
    this.knockouts = []; // [{dir: Float64Array(C), value: number}] orthonormal directions
    this.seed = 0;
    this.t = 0;
    this.needUpdate = false;
    this.resize(model.height, model.width);
  }

  resize(H, W) {
    this.H = H;
    this.W = W;
    const n = (H + 2) * (W + 2) * this.C;
    this.x = new Float32Array(n);
    this.y = new Float32Array(n);
    this.fire = new Uint8Array(H * W);
    this.pre = new Uint8Array(H * W);
    this.near = new Uint8Array(H * W); // 3x3 dilation of pre
    this.life = new Uint8Array(H * W);
    this.upd = new Float32Array(H * W); // |dx| of the last step (0 where not computed)
    this.poolRow = new Float32Array((H + 2) * W);
  }

  setAngle(deg) {
    this.angle = deg;
    const a = (deg * Math.PI) / 180;
    this.cos = Math.cos(a);
    this.sin = Math.sin(a);
  }

  idx(r, c) {
    // cell (r, c) of the H x W grid -> offset of its first channel in the padded buffer
    return ((r + 1) * (this.W + 2) + (c + 1)) * this.C;
  }

  reset() {
    // The article's seed (nca.model.seed_state): one cell at (H//2, W//2), channels 3.. = 1.
    this.x.fill(0);
    this.placeSeed(this.H >> 1, this.W >> 1);
    this.t = 0;
    this.upd.fill(0);
    this.fire.fill(0);
    this.life.fill(0);
  }

  placeSeed(r, c) {
    if (r < 0 || c < 0 || r >= this.H || c >= this.W) return;
    const o = this.idx(r, c);
    for (let k = 3; k < this.C; k++) this.x[o + k] = 1;
    this.applyKnockouts();
  }

  erase(r0, c0, radius) {
    // The article's damage: every cell within `radius` cells of (r0, c0) set to zero.
    const rr = radius * radius;
    for (let r = Math.max(0, Math.floor(r0 - radius)); r <= Math.min(this.H - 1, Math.ceil(r0 + radius)); r++)
      for (let c = Math.max(0, Math.floor(c0 - radius)); c <= Math.min(this.W - 1, Math.ceil(c0 + radius)); c++)
        if ((r - r0) * (r - r0) + (c - c0) * (c - c0) <= rr) this.x.fill(0, this.idx(r, c), this.idx(r, c) + this.C);
    this.applyKnockouts();
  }

  applyKnockouts() {
    // analysis.causal.interventions.ablate at the "state" point: v -> v - (v.d - m) d for each
    // direction d (m = 0: zero ablation; m = mean component: mean ablation), every cell.
    const ko = this.knockouts;
    if (!ko.length) return;
    const C = this.C, x = this.x;
    for (let r = 0; r < this.H; r++)
      for (let c = 0; c < this.W; c++) {
        const o = this.idx(r, c);
        for (let q = 0; q < ko.length; q++) {
          const d = ko[q].dir;
          let coef = 0;
          for (let k = 0; k < C; k++) coef += x[o + k] * d[k];
          const delta = ko[q].value - coef;
          if (delta !== 0) for (let k = 0; k < C; k++) if (d[k] !== 0) x[o + k] += delta * d[k];
        }
      }
  }

  aliveInto(buf, out) {
    // out[r*W+c] = max over the 3x3 neighbourhood of alpha > threshold (separable max-pool)
    const H = this.H, W = this.W, C = this.C, Wp = W + 2, row = this.poolRow, thr = this.threshold;
    for (let r = 0; r < H + 2; r++)
      for (let c = 0; c < W; c++) {
        const o = (r * Wp + c) * C + 3;
        row[r * W + c] = Math.max(buf[o], buf[o + C], buf[o + 2 * C]);
      }
    for (let r = 0; r < H; r++)
      for (let c = 0; c < W; c++) {
        const m = Math.max(row[r * W + c], row[(r + 1) * W + c], row[(r + 2) * W + c]);
        out[r * W + c] = m > thr ? 1 : 0;
      }
  }

  drawFire() {
    const H = this.H, W = this.W, rate = this.fireRate, fire = this.fire;
    const base = hash32((this.seed | 0) ^ 0x9e3779b9) ^ hash32(this.t + 0x632be5ab);
    for (let i = 0; i < H * W; i++) fire[i] = hash32(base + Math.imul(i, 0x85ebca6b)) / 4294967296 <= rate ? 1 : 0;
  }

  // One CA step. fireMask: optional Uint8Array [H*W] (test mode: masks from Python).
  step(fireMask) {
    const H = this.H, W = this.W, C = this.C, Hd = this.hidden, Wp = W + 2, C3 = 3 * C;
    this.applyKnockouts();
    const x = this.x, y = this.y;
    this.aliveInto(x, this.pre);
    if (fireMask) this.fire.set(fireMask);
    else this.drawFire();
    y.set(x);
    const pre = this.pre, near = this.near, fire = this.fire, p = this.p, d = this.d;
    for (let r = 0; r < H; r++)
      for (let c = 0; c < W; c++) {
        let any = 0;
        for (let rr = Math.max(0, r - 1); rr <= Math.min(H - 1, r + 1) && !any; rr++)
          for (let cc = Math.max(0, c - 1); cc <= Math.min(W - 1, c + 1); cc++) if (pre[rr * W + cc]) { any = 1; break; }
        near[r * W + c] = any;
      }
    const w1T = this.w1T, b1 = this.b1, w2 = this.w2, b2 = this.b2, cs = this.cos, sn = this.sin;
    const rotated = this.angle !== 0;
    const upd = this.upd, needUpdate = this.needUpdate;
    upd.fill(0);
    const rowStride = Wp * C;
    for (let r = 0; r < H; r++)
      for (let c = 0; c < W; c++) {
        const i = r * W + c;
        if (!(fire[i] ? near[i] : needUpdate && pre[i])) continue;
        const o = ((r + 1) * Wp + (c + 1)) * C;
        for (let k = 0; k < C; k++) {
          const n = o - rowStride + k, s = o + rowStride + k;
          // cross-correlation with outer([1,2,1], [-1,0,1]) / 8 and its transpose
          const sx = (x[n + C] - x[n - C] + 2 * (x[o + k + C] - x[o + k - C]) + x[s + C] - x[s - C]) * 0.125;
          const sy = (x[s - C] + 2 * x[s] + x[s + C] - x[n - C] - 2 * x[n] - x[n + C]) * 0.125;
          p[k] = x[o + k];
          if (rotated) {
            p[C + k] = cs * sx - sn * sy;
            p[2 * C + k] = sn * sx + cs * sy;
          } else {
            p[C + k] = sx;
            p[2 * C + k] = sy;
          }
        }
        for (let k = 0; k < C; k++) d[k] = b2[k];
        for (let j = 0; j < Hd; j++) {
          let a = b1[j];
          const row = j * C3;
          for (let q = 0; q < C3; q++) a += p[q] * w1T[row + q];
          if (a > 0) {
            const w = j * C;
            for (let k = 0; k < C; k++) d[k] += a * w2[w + k];
          }
        }
        let m2 = 0;
        for (let k = 0; k < C; k++) m2 += d[k] * d[k];
        if (pre[i]) upd[i] = Math.sqrt(m2);
        if (fire[i]) for (let k = 0; k < C; k++) y[o + k] = x[o + k] + d[k];
      }
    const life = this.life;
    this.aliveInto(y, life);
    for (let i = 0; i < H * W; i++) {
      life[i] = life[i] & pre[i];
      if (!life[i]) {
        const o = this.idx((i / W) | 0, i % W);
        y.fill(0, o, o + C);
      }
    }
    this.x = y;
    this.y = x;
    this.t += 1;
    this.applyKnockouts();
  }

  // The unpadded state [H, W, C] float32 (a copy).
  getState() {
    const H = this.H, W = this.W, C = this.C, out = new Float32Array(H * W * C);
    for (let r = 0; r < H; r++) out.set(this.x.subarray(this.idx(r, 0), this.idx(r, 0) + W * C), r * W * C);
    return out;
  }

  setState(a) {
    const H = this.H, W = this.W, C = this.C;
    if (a.length !== H * W * C) throw new Error(`state has ${a.length} values, expected ${H * W * C}`);
    this.x.fill(0);
    for (let r = 0; r < H; r++) this.x.set(a.subarray(r * W * C, (r + 1) * W * C), this.idx(r, 0));
  }
}
