// interworld play: keyboard and mouse in, frames out, over one WebSocket.
// Protocol: see interworld/serve/app.py. Plain JS, no build step.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const canvas = $("screen");
  const ctx = canvas.getContext("2d");

  // physical keys (layout independent) -> the model's action set; arrows follow the action aliases.
  // Shift (run in Doom) is not in the action set: the model knows one walking speed, so it is ignored.
  const KEYMAP = {
    KeyW: "w", KeyA: "a", KeyS: "s", KeyD: "d",
    ArrowUp: "w", ArrowDown: "s", ArrowLeft: "a", ArrowRight: "d",
    Space: "space", ControlLeft: "attack", ControlRight: "attack",
  };
  const MOUSE_FLUSH_MS = 33; // mouse motion is summed and sent at most ~30 times a second

  // exposed for the browser test and for poking at from the console
  const state = window.interworld = {
    connected: false, started: false, captured: false, frames: 0, fps: 0, latencyMs: null,
    lastFrame: -1, lastAction: 0, seq: 0, dropped: 0, errors: [], hello: null,
  };

  let ws = null;
  let mime = "image/jpeg";
  let maxMouse = 90;
  const held = new Set(); // action keys held on the keyboard
  let mouseAttack = false; // left button while captured
  let mdx = 0, mdy = 0, mouseSince = null; // motion not yet sent, and when it began
  const sentAt = new Map(); // action seq -> time of the input it carries
  const drawTimes = []; // when each frame of the last second was drawn
  const latencies = []; // the last few action -> frame latencies
  let upload = null; // data URL of an uploaded start image
  let drawing = Promise.resolve(); // frames are drawn one after another, in order
  let noLock = false; // pointer lock refused: fall back to plain mouse motion over the canvas

  // ------------------------------------------------------------------ connection
  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}/ws`);
    ws.binaryType = "arraybuffer";
    setConn("connecting…", "");
    ws.onopen = () => { state.connected = true; setConn("connected", "ok"); hideBanner(); };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") onNotice(JSON.parse(ev.data));
      else {
        const buf = ev.data;
        // one bad frame must not break the chain that draws all later ones
        drawing = drawing.then(() => onFrame(buf)).catch((e) => console.warn("bad frame", e));
      }
    };
    ws.onclose = (ev) => {
      state.connected = false; state.started = false;
      setConn(`disconnected (${ev.code})`, "bad");
      $("record").disabled = true;
      if (!$("banner").dataset.sticky) showBanner(`Disconnected${ev.reason ? ": " + ev.reason : ""}.`, true);
      $("reconnect").hidden = false;
    };
  }

  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }

  function onNotice(msg) {
    switch (msg.type) {
      case "hello": return onHello(msg);
      case "started":
        state.started = true;
        setSize(msg.width, msg.height);
        $("size").textContent = `${msg.width}×${msg.height}, ${msg.frames_per_chunk} per chunk`;
        $("record").disabled = !(state.hello && state.hello.record);
        return;
      case "recording":
        $("record").textContent = msg.on ? "■ Stop" : "● Record";
        $("record").classList.toggle("rec", msg.on);
        if (!msg.on && msg.url) {
          const a = $("download");
          a.href = msg.url; a.hidden = false;
          a.textContent = `Download recording (${msg.frames} frames, ${msg.seconds} s)`;
          if (msg.reason) showBanner(`Recording stopped: ${msg.reason}.`);
        }
        return;
      case "error":
        state.errors.push(msg);
        if (msg.code === "busy" || msg.fatal) { $("banner").dataset.sticky = "1"; showBanner(msg.message, true); }
        else showBanner(msg.message);
        return;
    }
  }

  function onHello(msg) {
    state.hello = msg;
    mime = msg.format; maxMouse = msg.max_mouse;
    $("model").textContent = msg.model;
    $("fps-target").textContent = `/ ${msg.fps}`;
    setSize(msg.width, msg.height);
    const sel = $("image");
    const keep = sel.value;
    sel.innerHTML = "";
    for (const name of msg.examples) sel.add(new Option(name, name));
    if (upload) sel.add(new Option("uploaded image", "__upload__"));
    if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
    if (!$("prompt").value) $("prompt").value = msg.prompt || "";
    if (!$("seed").dataset.touched) $("seed").value = msg.seed;
    updatePreview();
    if (sel.options.length) start(); else showBanner("No example images on this server: upload a start image.");
  }

  function setSize(w, h) {
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    canvas.style.aspectRatio = `${w} / ${h}`; // kept when a short window caps the height
  }

  // ------------------------------------------------------------------ frames
  async function onFrame(buf) {
    const view = new DataView(buf);
    const n = view.getUint32(0);
    const head = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
    try {
      const bmp = await createImageBitmap(new Blob([new Uint8Array(buf, 4 + n)], { type: mime }));
      ctx.drawImage(bmp, 0, 0, canvas.width, canvas.height);
      bmp.close();
    } catch (e) {
      console.warn("could not decode a frame", e);
    }
    send({ type: "ack", frame: head.i }); // frees a slot in the server's window: it may send the next
    const now = performance.now();
    state.frames++; state.lastFrame = head.i; state.lastAction = head.a; state.dropped = head.dropped;
    drawTimes.push(now);
    // the first frame that includes an action ends that action's latency
    for (const [seq, t] of sentAt) {
      if (seq > head.a) break;
      latencies.push(now - t);
      sentAt.delete(seq);
    }
    while (latencies.length > 15) latencies.shift();
    if (head.gen_ms != null) $("chunk").textContent = head.gen_ms.toFixed(0);
  }

  function median(xs) {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)];
  }

  setInterval(() => {
    const now = performance.now();
    while (drawTimes.length && drawTimes[0] < now - 1000) drawTimes.shift();
    state.fps = drawTimes.length; // frames drawn in the last second
    state.latencyMs = latencies.length ? median(latencies) : null;
    $("fps").textContent = state.fps.toFixed(1);
    $("latency").textContent = state.latencyMs == null ? "–" : state.latencyMs.toFixed(0);
    $("dropped").textContent = state.dropped;
  }, 250);

  // ------------------------------------------------------------------ actions
  function sendAction(since) {
    if (!state.started) { mdx = mdy = 0; mouseSince = null; return; }
    const clamp = (v) => Math.max(-maxMouse, Math.min(maxMouse, v));
    const keys = new Set(held);
    if (mouseAttack) keys.add("attack");
    const seq = ++state.seq;
    sentAt.set(seq, since ?? performance.now());
    if (sentAt.size > 256) sentAt.delete(sentAt.keys().next().value); // frames stopped coming: forget the oldest
    send({
      type: "action", seq, t: Math.round(performance.now()), keys: [...keys],
      mouse: [+clamp(mdx).toFixed(3), +clamp(mdy).toFixed(3)],
    });
    mdx = mdy = 0; mouseSince = null;
  }

  setInterval(() => { if (mdx || mdy) sendAction(mouseSince); }, MOUSE_FLUSH_MS);

  function showKeys() {
    const on = new Set(held);
    if (mouseAttack) on.add("attack");
    for (const cap of document.querySelectorAll(".cap[data-key]")) cap.classList.toggle("on", on.has(cap.dataset.key));
  }

  function releaseAll() {
    if (!held.size && !mouseAttack) return;
    held.clear(); mouseAttack = false;
    showKeys(); sendAction(); // no key stays stuck down when focus or the pointer is lost
  }

  function setCaptured(on) {
    state.captured = on;
    $("overlay").classList.toggle("hidden", on);
    if (!on) releaseAll();
  }

  canvas.addEventListener("click", () => {
    if (state.captured) return;
    canvas.focus();
    if (noLock || !canvas.requestPointerLock) { setCaptured(true); return; }
    const p = canvas.requestPointerLock();
    if (p && p.catch) p.catch(() => { noLock = true; setCaptured(true); });
  });
  document.addEventListener("pointerlockchange", () => setCaptured(document.pointerLockElement === canvas));
  document.addEventListener("pointerlockerror", () => { noLock = true; setCaptured(true); });
  window.addEventListener("blur", () => { if (noLock) setCaptured(false); else releaseAll(); });
  document.addEventListener("mousedown", (e) => { if (noLock && state.captured && e.target !== canvas) setCaptured(false); });

  document.addEventListener("keydown", (e) => {
    if (!state.captured) return;
    if (e.code === "Escape") { // the browser leaves pointer lock itself; this covers the fallback
      if (document.pointerLockElement) document.exitPointerLock(); else setCaptured(false);
      return;
    }
    const k = KEYMAP[e.code];
    if (e.code === "ShiftLeft" || e.code === "ShiftRight" || k) e.preventDefault();
    if (!k || e.repeat || held.has(k)) return;
    held.add(k); showKeys(); sendAction();
  });
  document.addEventListener("keyup", (e) => {
    const k = KEYMAP[e.code];
    if (!k || !held.has(k)) return;
    held.delete(k); showKeys(); sendAction();
  });
  document.addEventListener("mousemove", (e) => {
    if (!state.captured) return;
    const sens = parseFloat($("sens").value);
    if (mouseSince == null) mouseSince = performance.now();
    mdx += e.movementX * sens; // positive dx turns right
    mdy += e.movementY * sens; // positive dy looks down, as the mouse moves down
  });
  canvas.addEventListener("mousedown", (e) => {
    if (!state.captured || e.button !== 0) return;
    mouseAttack = true; showKeys(); sendAction();
  });
  document.addEventListener("mouseup", (e) => {
    if (e.button !== 0 || !mouseAttack) return;
    mouseAttack = false; showKeys(); sendAction();
  });

  // ------------------------------------------------------------------ start image, prompt, restart
  function start() {
    const sel = $("image");
    const msg = { type: "start", prompt: $("prompt").value, seed: Math.max(0, parseInt($("seed").value, 10) || 0) };
    if (sel.value === "__upload__" && upload) msg.upload = upload; else if (sel.value) msg.image = sel.value;
    else return showBanner("Pick or upload a start image first.");
    held.clear(); mouseAttack = false; showKeys();
    $("download").hidden = true;
    send(msg);
  }

  function updatePreview() {
    const v = $("image").value;
    $("preview").src = v === "__upload__" ? upload : v ? `/examples/${encodeURIComponent(v)}` : "";
  }

  $("upload").addEventListener("change", async () => {
    const file = $("upload").files[0];
    if (!file) return;
    try {
      // downscaled here so the message stays small; the server crops to the model's size anyway
      const bmp = await createImageBitmap(file);
      const scale = Math.min(1, 640 / Math.max(bmp.width, bmp.height));
      const c = document.createElement("canvas");
      c.width = Math.round(bmp.width * scale); c.height = Math.round(bmp.height * scale);
      c.getContext("2d").drawImage(bmp, 0, 0, c.width, c.height);
      upload = c.toDataURL("image/png");
    } catch (e) {
      return showBanner(`Could not read ${file.name} as an image.`);
    }
    const sel = $("image");
    if (![...sel.options].some((o) => o.value === "__upload__")) sel.add(new Option("uploaded image", "__upload__"));
    sel.value = "__upload__";
    updatePreview();
    start();
  });
  $("image").addEventListener("change", () => { updatePreview(); start(); });
  $("seed").addEventListener("change", () => { $("seed").dataset.touched = "1"; });
  $("prompt").addEventListener("keydown", (e) => { if (e.key === "Enter") start(); });
  $("restart").addEventListener("click", start);
  $("record").addEventListener("click", () => send({ type: "record", on: !$("record").classList.contains("rec") }));
  $("reconnect").addEventListener("click", () => {
    delete $("banner").dataset.sticky;
    hideBanner();
    connect();
  });

  // ------------------------------------------------------------------ status line
  let bannerTimer = null;
  function showBanner(text, sticky = false) {
    $("banner-text").textContent = text;
    $("banner").hidden = false;
    clearTimeout(bannerTimer);
    if (!sticky) bannerTimer = setTimeout(hideBanner, 5000);
  }
  function hideBanner() { $("banner").hidden = true; $("reconnect").hidden = true; }
  function setConn(text, cls) { const c = $("conn"); c.textContent = text; c.className = `conn ${cls}`; }

  connect();
})();
