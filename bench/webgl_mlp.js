// Microbenchmark: the per-cell MLP (3C -> hidden ReLU -> C) of every cell of an H x W grid as
// two WebGL2 fragment-shader passes over float textures -- the bulk of a WebGL2 CA step
// (perception, fire and alive passes would come on top). Returns ms per evaluation, or
// {error}. arguments[0]: H, W, C, hidden, reps.
const [H, W, C, HID, REPS] = arguments;
const cv = document.createElement("canvas");
const gl = cv.getContext("webgl2");
if (!gl) return { error: "no webgl2" };
if (!gl.getExtension("EXT_color_buffer_float")) return { error: "no EXT_color_buffer_float" };
const PIN = (3 * C) / 4, PH = HID / 4, PO = C / 4; // texels per cell
function tex(w, h, data) {
  const t = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_2D, t);
  gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA32F, w, h, 0, gl.RGBA, gl.FLOAT, data);
  for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST);
  return t;
}
const rnd = (n) => Float32Array.from({ length: n }, () => Math.random() - 0.5);
const P = tex(W * PIN, H, rnd(W * PIN * H * 4));
const W1 = tex(PIN * 4, PH, rnd(PIN * 4 * PH * 4)); // row q: units 4q..4q+3; texel 4*i+u: inputs 4i..4i+3 of unit u
const W2 = tex(PH * 4, PO, rnd(PH * 4 * PO * 4));
const Hd = tex(W * PH, H, null), Out = tex(W * PO, H, null);
const vs = `#version 300 es
in vec2 p; void main(){ gl_Position = vec4(p, 0., 1.); }`;
function prog(fs) {
  const pr = gl.createProgram();
  for (const [type, src] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]]) {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    gl.attachShader(pr, s);
  }
  gl.linkProgram(pr);
  return pr;
}
const layer = (NIN, NOUT, relu) => `#version 300 es
precision highp float; uniform highp sampler2D X, Wt; out vec4 o;
void main(){
  ivec2 f = ivec2(gl_FragCoord.xy); int cell = f.x / ${NOUT}, q = f.x % ${NOUT};
  vec4 acc = vec4(0.);
  for (int i = 0; i < ${NIN}; i++) {
    vec4 x = texelFetch(X, ivec2(cell * ${NIN} + i, f.y), 0);
    acc += vec4(dot(x, texelFetch(Wt, ivec2(4 * i, q), 0)), dot(x, texelFetch(Wt, ivec2(4 * i + 1, q), 0)),
                dot(x, texelFetch(Wt, ivec2(4 * i + 2, q), 0)), dot(x, texelFetch(Wt, ivec2(4 * i + 3, q), 0)));
  }
  o = ${relu ? "max(acc, 0.)" : "acc"};
}`;
const p1 = prog(layer(PIN, PH, true)), p2 = prog(layer(PH, PO, false));
const buf = gl.createBuffer();
gl.bindBuffer(gl.ARRAY_BUFFER, buf);
gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 3, -1, -1, 3]), gl.STATIC_DRAW);
const fb1 = gl.createFramebuffer(), fb2 = gl.createFramebuffer();
gl.bindFramebuffer(gl.FRAMEBUFFER, fb1);
gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, Hd, 0);
gl.bindFramebuffer(gl.FRAMEBUFFER, fb2);
gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, Out, 0);
function pass(pr, fb, w, X, Wt) {
  gl.useProgram(pr);
  gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
  gl.viewport(0, 0, w, H);
  const loc = gl.getAttribLocation(pr, "p");
  gl.enableVertexAttribArray(loc);
  gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
  gl.activeTexture(gl.TEXTURE0); gl.bindTexture(gl.TEXTURE_2D, X); gl.uniform1i(gl.getUniformLocation(pr, "X"), 0);
  gl.activeTexture(gl.TEXTURE1); gl.bindTexture(gl.TEXTURE_2D, Wt); gl.uniform1i(gl.getUniformLocation(pr, "Wt"), 1);
  gl.drawArrays(gl.TRIANGLES, 0, 3);
}
const px = new Float32Array(4);
function once() {
  pass(p1, fb1, W * PH, P, W1);
  pass(p2, fb2, W * PO, Hd, W2);
  gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.FLOAT, px); // wait for the GPU (or SwiftShader) to finish
}
once();
const t0 = performance.now();
for (let i = 0; i < REPS; i++) once();
const ms = (performance.now() - t0) / REPS;
const e = gl.getExtension("WEBGL_debug_renderer_info");
return { ms_per_mlp: ms, renderer: e ? gl.getParameter(e.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER), check: px[0] };
