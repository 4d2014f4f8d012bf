/* "Will it fit?" — the site's training-memory calculator, plain JavaScript, offline.
 *
 * The formulas are those of lab_utils.fitting.calculator (Python), written once more here so the page
 * works without a server; every constant (bytes per parameter, presets, allowance, fix costs) comes from
 * calculator_data.js, which `python -m lab_utils.fitting.calculator` generates from lab_utils.
 * tests/test_calculator_page.py drives this page on random configurations and compares every number
 * with the Python functions. Keep the order of floating-point operations as in Python: model states
 * must match exactly.
 */
(function () {
  "use strict";
  const D = window.CALCULATOR_DATA;
  const GB = D.gb;
  const FIELDS = ["params", "layers", "hidden", "heads", "vocab", "seq", "micro_batch", "precision",
    "optimizer", "stage", "dp", "offload", "checkpointing", "gpu_gb"];
  const INTS = ["layers", "hidden", "heads", "vocab", "seq", "micro_batch", "dp"];
  const PARTS = [["params", "Parameters"], ["grads", "Gradients"], ["optimizer_states", "Optimizer states"],
    ["activations", "Activations"], ["allowance", "Buffers & fragmentation"]];

  // ------------------------------------------------------------ the model (lab_utils.fitting.calculator)
  function validate(c) {
    for (const name of INTS) {
      if (!Number.isInteger(c[name]) || c[name] < 1) throw new Error(name.replace("_", "-") + " must be a whole number ≥ 1");
    }
    if (!(c.params > 0)) throw new Error("the parameter count must be > 0 (e.g. 7.5e9 or 7.5B)");
    if (!(c.gpu_gb > 0)) throw new Error("the GPU memory must be > 0 GB");
    if (!(c.precision in D.precisions) || !(c.optimizer in D.optimizers) ||
        !(c.checkpointing in D.checkpointing) || !(String(c.stage) in D.stages)) throw new Error("unknown option");
    if (c.offload && c.stage === 0) throw new Error("optimizer offload runs on ZeRO's partitioning: choose stage 1, 2 or 3");
  }

  function roundHalfEven(x) {  // Python's round()
    const f = Math.floor(x), d = x - f;
    if (d > 0.5) return f + 1;
    if (d < 0.5) return f;
    return f % 2 === 0 ? f : f + 1;
  }

  function evenSegments(n, k) {  // lab_utils.fitting.checkpointing.even_segments
    const bounds = [];
    for (let i = 0; i <= k; i++) bounds.push(roundHalfEven(i * n / k));
    const segs = [];
    for (let i = 0; i < k; i++) segs.push([bounds[i], bounds[i + 1]]);
    return segs;
  }

  function sqrtNSegments(n) {
    return evenSegments(n, Math.max(1, roundHalfEven(Math.sqrt(n))));
  }

  function estimatePeak(sizes, segs, flags) {  // checkpointing.activation_memory_estimate(...).peak
    let stored = 0, segment = 0;
    const seen = new Set();
    segs.forEach(([b, e], j) => {
      const ck = flags ? flags[j] : true;
      const keep = [];
      if (ck) keep.push(b); else for (let i = b; i <= e; i++) keep.push(i);
      let add = 0;
      for (const i of keep) if (!seen.has(i)) add += sizes[i];
      stored += add;
      keep.forEach((i) => seen.add(i));
      if (ck) {
        let s = 0;
        for (let i = b + 1; i <= e; i++) s += sizes[i];
        segment = Math.max(segment, s);
      }
    });
    return stored + segment;
  }

  function layerActivationBytes(s, b, h, a, elem) {  // Korthikanti et al. 2022, Eq. 1
    const sbh = s * b * h;
    const total = sbh * (16 * elem + 2) + (2 * elem + 1) * a * s * s * b;
    return [elem * sbh, total - elem * sbh];
  }

  function layersPeakBytes(layers, x, rest, mode) {
    const n = 2 * layers - 1, sizes = [];
    for (let i = 0; i < layers; i++) sizes.push(x, rest);
    if (mode === "none") return estimatePeak(sizes, [[0, n]], [false]);
    const per = mode === "every" ? evenSegments(layers, layers) : sqrtNSegments(layers);
    return estimatePeak(sizes, per.map(([b, e]) => [2 * b, Math.min(2 * e, n)]), null);
  }

  function activationBytes(c) {
    const elem = D.precisions[c.precision][1];
    const [x, rest] = layerActivationBytes(c.seq, c.micro_batch, c.hidden, c.heads, elem);
    const sbh = c.seq * c.micro_batch * c.hidden;
    const outside = sbh + 2 * elem * sbh + 4 * c.seq * c.micro_batch * c.vocab;  // §4.3
    return layersPeakBytes(c.layers, x, rest, c.checkpointing) + outside;
  }

  function breakdown(c) {  // ZeRO §5 (lab_utils.parallel.zero.memory_breakdown), ZeRO-Offload §4
    const [w, g, k] = D.bytes_per_parameter[c.optimizer + "/" + c.precision];
    const psi = c.params, nd = c.dp;
    let params = w * psi / (c.stage >= 3 ? nd : 1);
    let grads = g * psi / (c.stage >= 2 ? nd : 1);
    let opt = k * psi / (c.stage >= 1 ? nd : 1);
    let host = 0;
    if (c.offload) { host = (g + k) * psi / nd; grads = 0; opt = 0; }
    const acts = activationBytes(c);
    const allowance = D.allowance_fixed + D.allowance_fraction * (params + grads + opt + acts);
    const states = params + grads + opt;
    const total = states + acts + allowance;
    const gpu = c.gpu_gb * GB;
    return { params, grads, optimizer_states: opt, activations: acts, allowance, host, gpu,
      model_states: states, total, fits: total <= gpu };
  }

  function stageTable(c) {
    const out = {};
    for (let s = 0; s < 4; s++) out[s] = breakdown(Object.assign({}, c, { stage: s, offload: c.offload && s > 0 })).model_states;
    return out;
  }

  function changeCost(o, n) {  // calculator.change_cost
    const C = D.costs, changed = [];
    let cost = 0;
    if (n.micro_batch !== o.micro_batch) {
      let steps = 0, mb = n.micro_batch;
      while (mb < o.micro_batch) { mb *= 2; steps += 1; }
      cost += C.micro_batch * steps; changed.push("micro_batch");
    }
    if (n.dp !== o.dp) { cost += C.gpus * Math.round(Math.log2(n.dp / o.dp)); changed.push("dp"); }
    if (n.stage !== o.stage) { cost += C.stage[n.stage] - C.stage[o.stage]; changed.push("stage"); }
    if (n.checkpointing !== o.checkpointing) {
      cost += o.checkpointing === "none" ? C.checkpointing : 0.5; changed.push("checkpointing");
    }
    for (const name of ["precision", "optimizer", "offload"]) {
      if (n[name] !== o[name]) { cost += C[name]; changed.push(name); }
    }
    return [cost, changed];
  }

  function candidates(c) {  // calculator.candidates, same order
    const dps = [];
    for (let j = 0; j < 13; j++) if (c.dp * 2 ** j <= Math.max(D.max_dp, c.dp)) dps.push(c.dp * 2 ** j);
    const stages = []; for (let s = c.stage; s < 4; s++) stages.push(s);
    const offloads = c.offload ? [true] : [false, true];
    const precs = [c.precision].concat(c.precision === "fp32" ? ["mixed"] : []);
    const opts = [c.optimizer].concat(c.optimizer === "adam" ? ["adam8bit"] : []);
    const ckpts = [c.checkpointing].concat(["sqrt", "every"].filter((m) => m !== c.checkpointing));
    const mbs = []; for (let d = c.micro_batch; d > 0; d--) if (c.micro_batch % d === 0) mbs.push(d);
    const out = [];
    for (const dp of dps) for (const stage of stages) for (const offload of offloads) for (const precision of precs)
      for (const optimizer of opts) for (const checkpointing of ckpts) for (const micro_batch of mbs) {
        if (offload && stage === 0) continue;
        out.push(Object.assign({}, c, { dp, stage, offload, precision, optimizer, checkpointing, micro_batch }));
      }
    return out;
  }

  function cheapestFix(c) {  // calculator.cheapest_fix
    if (breakdown(c).fits) return null;
    const ranked = candidates(c).map((cand, i) => { const [cost, changed] = changeCost(c, cand); return { cost, changed, i, cand }; });
    ranked.sort((a, b) => a.cost - b.cost || a.changed.length - b.changed.length || a.i - b.i);
    let best = null;
    for (const r of ranked) {
      if (best && (r.cost !== best.cost || r.changed.length !== best.changed.length)) break;
      const b = breakdown(r.cand);
      if (b.fits && (!best || b.total < best.total)) best = { cost: r.cost, changed: r.changed, total: b.total, config: r.cand };
    }
    return best;
  }

  // ------------------------------------------------------------------------------------ the page
  const fmt = (bytes) => {
    const v = bytes / GB;
    return (v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2)) + " GB";
  };
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, v);
    for (const k of kids) e.append(k);
    return e;
  };
  const SVG = "http://www.w3.org/2000/svg";

  function parseCount(text) {  // "7.5e9", "7.5B", "124M", "1.3T", "7,000,000,000"
    const m = String(text).trim().replace(/[,_\s]/g, "").match(/^([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)([kmbt]?)$/i);
    if (!m) return NaN;
    return parseFloat(m[1]) * ({ "": 1, k: 1e3, m: 1e6, b: 1e9, t: 1e12 })[m[2].toLowerCase()];
  }

  function field(label, input, hint, wide) {
    return el("label", { class: "wif-field" + (wide ? " wif-wide" : "") }, el("span", { class: "wif-label" }, label), input, hint ? el("small", {}, hint) : "");
  }
  function select(name, options) {
    const s = el("select", { name, id: "wif-" + name });
    for (const [value, label] of options) s.append(el("option", { value }, label));
    return s;
  }
  const number = (name, min) => el("input", { name, id: "wif-" + name, type: "number", min: String(min), step: "1", inputmode: "numeric" });

  function buildForm(root) {
    const f = {};
    f.preset = select("preset", [["custom", "custom"]].concat(Object.entries(D.presets).map(([k, p]) => [k, p[0]])));
    f.params = el("input", { name: "params", id: "wif-params", type: "text", inputmode: "decimal", autocomplete: "off" });
    for (const n of ["layers", "hidden", "heads", "vocab", "seq", "micro_batch", "dp"]) f[n] = number(n, 1);
    f.precision = select("precision", Object.entries(D.precisions).map(([k, p]) => [k, p[0]]));
    f.optimizer = select("optimizer", Object.entries(D.optimizers));
    f.checkpointing = select("checkpointing", Object.entries(D.checkpointing));
    f.stage = select("stage", Object.entries(D.stages));
    f.offload = el("input", { name: "offload", id: "wif-offload", type: "checkbox" });
    f.gpu = select("gpu", Object.entries(D.gpus).map(([k, g]) => [k, g[0]]).concat([["custom", "custom"]]));
    f.gpu_gb = el("input", { name: "gpu_gb", id: "wif-gpu_gb", type: "number", min: "0.1", step: "any", inputmode: "decimal" });
    const group = (legend, ...fields) => el("fieldset", {}, el("legend", {}, legend), el("div", { class: "wif-grid" }, ...fields));
    const form = el("form", { class: "wif-form", id: "wif-form", autocomplete: "off" },
      group("Model", field("Preset", f.preset, "", true), field("Parameters", f.params, "e.g. 7.5e9 or 7.5B"),
        field("Layers L", f.layers), field("Hidden size h", f.hidden), field("Heads a", f.heads), field("Vocabulary v", f.vocab)),
      group("Training", field("Precision", f.precision, "", true), field("Optimizer", f.optimizer, "", true),
        field("Micro-batch b", f.micro_batch), field("Sequence length s", f.seq), field("Activation checkpointing", f.checkpointing, "", true)),
      group("Parallelism", field("ZeRO stage / FSDP", f.stage, "", true), field("Data-parallel GPUs N_d", f.dp),
        el("label", { class: "wif-field wif-check" }, f.offload, el("span", {}, "Offload optimizer to CPU (ZeRO-Offload)"))),
      group("GPU", field("GPU", f.gpu, "", true), field("Memory (GB)", f.gpu_gb)));
    form.addEventListener("submit", (e) => e.preventDefault());
    root.append(form);
    return f;
  }

  function setForm(f, c) {
    f.params.value = String(c.params);
    for (const n of ["layers", "hidden", "heads", "vocab", "seq", "micro_batch", "dp", "gpu_gb"]) f[n].value = String(c[n]);
    for (const n of ["precision", "optimizer", "checkpointing"]) f[n].value = c[n];
    f.stage.value = String(c.stage);
    f.offload.checked = !!c.offload;
    syncSelectors(f);
  }

  function readForm(f) {
    const c = { params: parseCount(f.params.value), precision: f.precision.value, optimizer: f.optimizer.value,
      checkpointing: f.checkpointing.value, stage: parseInt(f.stage.value, 10), offload: f.offload.checked,
      gpu_gb: parseFloat(f.gpu_gb.value) };
    for (const n of INTS) c[n] = Number(f[n].value);
    return c;
  }

  function syncSelectors(f) {  // preset and GPU selects show "custom" unless the fields match one
    const p = Object.entries(D.presets).find(([, v]) => v[1] === parseCount(f.params.value) &&
      ["layers", "hidden", "heads", "vocab", "seq"].every((n, i) => Number(f[n].value) === v[2 + i]));
    f.preset.value = p ? p[0] : "custom";
    const g = Object.entries(D.gpus).find(([k, v]) => v[1] === parseFloat(f.gpu_gb.value) && k === f.gpu.value) ||
      Object.entries(D.gpus).find(([, v]) => v[1] === parseFloat(f.gpu_gb.value));
    f.gpu.value = g ? g[0] : "custom";
    f.offload.disabled = f.stage.value === "0";
    if (f.offload.disabled) f.offload.checked = false;
  }

  function fromQuery(search) {
    const q = new URLSearchParams(search), c = Object.assign({}, D.defaults);
    if (q.has("preset") && q.get("preset") in D.presets) {
      const p = D.presets[q.get("preset")];
      Object.assign(c, { params: p[1], layers: p[2], hidden: p[3], heads: p[4], vocab: p[5], seq: p[6] });
    }
    if (q.has("gpu") && q.get("gpu") in D.gpus) c.gpu_gb = D.gpus[q.get("gpu")][1];
    for (const name of FIELDS) {
      const v = q.get(D.query[name]);
      if (v === null) continue;
      if (name === "params") c.params = parseCount(v);
      else if (name === "gpu_gb") c.gpu_gb = parseFloat(v);
      else if (name === "offload") c.offload = v === "1" || v === "true";
      else if (name === "stage") c.stage = parseInt(v, 10);
      else if (INTS.includes(name)) c[name] = Number(v);
      else c[name] = v;
    }
    return c;
  }

  function toQuery(c) {
    return FIELDS.map((n) => D.query[n] + "=" + (n === "offload" ? (c.offload ? 1 : 0) : encodeURIComponent(c[n]))).join("&");
  }

  function bar(b) {
    const scale = Math.max(b.total, b.gpu), svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 1000 60");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("class", "wif-bar");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "per-GPU memory: " + PARTS.map(([k, l]) => l + " " + fmt(b[k])).join(", ") + "; GPU " + fmt(b.gpu));
    let x = 0;
    PARTS.forEach(([k], i) => {
      const w = 1000 * b[k] / scale, r = document.createElementNS(SVG, "rect");
      Object.entries({ x, y: 6, width: Math.max(w, 0), height: 48, class: "wif-part wif-c" + i }).forEach(([a, v]) => r.setAttribute(a, v));
      svg.append(r);
      x += w;
    });
    const line = document.createElementNS(SVG, "line"), gx = 1000 * b.gpu / scale;
    Object.entries({ x1: gx, x2: gx, y1: 0, y2: 60, class: "wif-gpu-line" }).forEach(([a, v]) => line.setAttribute(a, v));
    svg.append(line);
    return svg;
  }

  function row(key, label, bytes, swatch) {
    return el("tr", {}, el("th", { scope: "row" }, swatch === undefined ? "" : el("span", { class: "wif-swatch wif-c" + swatch }), label),
      el("td", { "data-out": key, "data-bytes": String(bytes) }, fmt(bytes)));
  }

  const LABEL = {
    micro_batch: (o, n) => `micro-batch ${o.micro_batch} → ${n.micro_batch}, with ${o.micro_batch / n.micro_batch} gradient-accumulation steps (same global batch)`,
    dp: (o, n) => `${n.dp} data-parallel GPUs instead of ${o.dp}`,
    stage: (o, n) => `ZeRO stage ${D.stages[n.stage]}`,
    checkpointing: (o, n) => `activation checkpointing: ${D.checkpointing[n.checkpointing]}`,
    precision: () => `mixed precision (${D.precisions.mixed[0]})`,
    optimizer: () => "8-bit Adam",
    offload: () => "offload the optimizer to the CPU (ZeRO-Offload)",
  };

  function fixBlock(c, b, fix, apply) {
    const box = el("div", { class: "wif-fix", id: "wif-fix" });
    if (b.fits) {
      box.append(el("p", {}, `It fits, with ${fmt(b.gpu - b.total)} to spare.`));
      return box;
    }
    if (!fix) {
      box.setAttribute("data-fix", "none");
      box.append(el("p", {}, "No combination of the changes this calculator knows (smaller micro-batch, checkpointing, ZeRO, mixed precision, 8-bit Adam, offload, up to " +
        D.max_dp + " GPUs) fits. Tensor or pipeline parallelism, or a larger GPU, is needed."));
      return box;
    }
    const nb = breakdown(fix.config);
    box.setAttribute("data-fix", JSON.stringify(fix.config));
    box.setAttribute("data-changes", fix.changed.join(","));
    const effects = [];
    if (nb.activations !== b.activations) effects.push(`activations from ${fmt(b.activations)} to ${fmt(nb.activations)}`);
    if (nb.model_states !== b.model_states) effects.push(`model states on the GPU from ${fmt(b.model_states)} to ${fmt(nb.model_states)}`);
    const list = el("ul", {});
    fix.changed.forEach((k) => list.append(el("li", {}, LABEL[k](c, fix.config))));
    const btn = el("button", { type: "button", id: "wif-apply", class: "wif-apply" }, "Apply this change");
    btn.addEventListener("click", () => apply(fix.config));
    box.append(el("p", {}, el("strong", {}, "Cheapest change that fits:")), list,
      el("p", {}, `${effects.length ? "It brings " + effects.join(", and ") + ": " : "Then: "}${fmt(nb.total)} of ${fmt(nb.gpu)} in all.`), btn);
    return box;
  }

  function render(out, c, apply) {
    out.replaceChildren();
    let b;
    try { validate(c); b = breakdown(c); } catch (err) {
      out.append(el("p", { class: "wif-error", role: "alert", id: "wif-error" }, "Check the inputs: " + err.message + "."));
      return;
    }
    out.append(el("p", { class: "wif-verdict " + (b.fits ? "wif-yes" : "wif-no"), id: "wif-verdict", "data-fits": String(b.fits) },
      b.fits ? `Fits: ${fmt(b.total)} of ${fmt(b.gpu)} per GPU.` : `Does not fit: ${fmt(b.total)} needed, ${fmt(b.gpu)} per GPU.`));
    out.append(bar(b), el("p", { class: "wif-note" }, "Dashed line: the GPU's memory. Colours as in the table below."));
    const table = el("table", { class: "wif-table", id: "wif-breakdown" }, el("caption", {}, "Per GPU"));
    PARTS.forEach(([k, l], i) => table.append(row(k, l, b[k], i)));
    table.append(row("total", "Total", b.total), row("gpu", "GPU memory", b.gpu));
    if (c.offload) table.append(row("host", "Host RAM per GPU process (offloaded)", b.host));
    out.append(table);
    const st = stageTable(c), stages = el("table", { class: "wif-table", id: "wif-stages" },
      el("caption", {}, `Model states per GPU by ZeRO stage, N_d = ${c.dp}`));
    for (let s = 0; s < 4; s++) stages.append(row("stage" + s, D.stages[s], st[s]));
    out.append(stages, fixBlock(c, b, cheapestFix(c), apply));
  }

  function init() {
    const root = document.getElementById("will-it-fit");
    if (!root || !D) return;
    root.replaceChildren();
    const f = buildForm(root), out = el("div", { class: "wif-out", id: "wif-out", "aria-live": "polite" });
    root.append(out);
    const update = () => {
      const c = readForm(f);
      render(out, c, apply);
      try { history.replaceState(null, "", "?" + toQuery(c)); } catch (e) { /* file:// may refuse; harmless */ }
    };
    const apply = (c) => { setForm(f, c); update(); };
    f.preset.addEventListener("change", () => {
      const p = D.presets[f.preset.value];
      if (p) ["params", "layers", "hidden", "heads", "vocab", "seq"].forEach((n, i) => { f[n].value = String(p[1 + i]); });
      update();
    });
    f.gpu.addEventListener("change", () => { const g = D.gpus[f.gpu.value]; if (g) f.gpu_gb.value = String(g[1]); update(); });
    f.stage.addEventListener("change", () => { syncSelectors(f); update(); });
    for (const n of FIELDS.filter((n) => n !== "stage")) f[n].addEventListener("input", () => { syncSelectors(f); update(); });
    for (const n of ["precision", "optimizer", "checkpointing", "offload"]) f[n].addEventListener("change", update);
    setForm(f, fromQuery(location.search));
    render(out, readForm(f), apply);
  }

  window.WillItFit = { breakdown, stageTable, cheapestFix, candidates, activationBytes, fromQuery, toQuery };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
