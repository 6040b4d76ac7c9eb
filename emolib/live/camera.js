// emolib BrowserCamera front end (anywidget ES module; the protocol is described in browser.py).
// The camera opens only while the model's `running` is true; one frame is in flight at a time.

function render({ model, el }) {
  el.classList.add("emolib-camera");
  const view = document.createElement("img");        // the kernel's annotated frames
  view.alt = "annotated camera frames";
  const video = document.createElement("video");     // the raw camera stream, never shown
  video.muted = true;
  video.playsInline = true;
  const canvas = document.createElement("canvas");
  const button = document.createElement("button");
  const status = document.createElement("div");
  status.className = "emolib-camera-status";
  const bar = document.createElement("div");
  bar.className = "emolib-camera-bar";
  bar.append(button, status);
  el.append(view, bar);

  let stream = null;
  let capturedAt = 0;      // performance.now() when the frame in flight was captured
  let roundTrip = null;    // the previous frame's capture -> on-screen time, sent with the next frame
  let frameId = 0;
  let url = null;
  let starting = false;
  let frames = 0;

  function show(text) {
    status.textContent = text;
  }

  function syncButton() {
    button.textContent = model.get("running") ? "Stop" : "Start";
  }

  function fail(message) {
    show(message);
    model.set("error", message);
    model.set("running", false);
    model.save_changes();
  }

  async function start() {
    if (stream || starting) return;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      // Browsers give camera access to secure pages only: https, or http on localhost.
      fail("no camera access on this page: open JupyterLab over https or on localhost");
      return;
    }
    starting = true;
    show("starting the camera ...");
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
    } catch (err) {
      starting = false;
      fail(`camera not available: ${err.name}: ${err.message}`);
      return;
    }
    starting = false;
    if (!model.get("running")) {            // stopped while the browser asked for permission
      stop();
      return;
    }
    video.srcObject = stream;
    await video.play();
    roundTrip = null;
    sendFrame();
  }

  function stop() {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    video.srcObject = null;
  }

  function sendFrame() {
    if (!stream || !video.videoWidth) return;
    const width = Math.min(model.get("width"), video.videoWidth);
    canvas.width = width;
    canvas.height = Math.round((video.videoHeight * width) / video.videoWidth);
    capturedAt = performance.now();
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    canvas.toBlob(async (blob) => {
      if (!blob || !stream) return;
      const buffer = await blob.arrayBuffer();
      frameId += 1;
      model.send({ type: "frame", id: frameId, round_trip_ms: roundTrip }, undefined, [new DataView(buffer)]);
    }, "image/jpeg", model.get("quality"));
  }

  function onMessage(msg, buffers) {
    if (msg.type !== "result" || msg.id !== frameId) return;
    if (!buffers || !buffers.length) {      // the kernel could not process the frame: it says why
      show(msg.text);
      return;
    }
    const next = URL.createObjectURL(new Blob([buffers[0]], { type: "image/jpeg" }));
    view.onload = () => {
      roundTrip = performance.now() - capturedAt;
      frames += 1;
      // For tests and the curious: what the last frame showed.
      el.dataset.frames = String(frames);
      el.dataset.faces = String(msg.faces.length);
      el.dataset.labels = msg.faces.map((f) => f.label).join(",");
      show(`${msg.text} · round trip ${roundTrip.toFixed(0)} ms (kernel ${msg.kernel_ms.toFixed(0)} ms)`);
      if (url) URL.revokeObjectURL(url);
      url = next;
      if (model.get("running")) sendFrame();
    };
    view.src = next;
  }

  function onRunning() {
    syncButton();
    if (model.get("running")) start();
    else {
      stop();
      if (!model.get("error")) show(frames ? `stopped after ${frames} frames` : "stopped");
    }
  }

  button.addEventListener("click", () => {
    if (!model.get("running")) model.set("error", "");
    model.set("running", !model.get("running"));
    model.save_changes();
  });
  model.on("change:running", onRunning);
  model.on("msg:custom", onMessage);
  syncButton();
  show("press Start, or run the cell that awaits camera.run()");
  if (model.get("running")) start();

  return () => {                            // the view is removed: release the camera
    model.off("change:running", onRunning);
    model.off("msg:custom", onMessage);
    stop();
    if (url) URL.revokeObjectURL(url);
  };
}

export default { render };
