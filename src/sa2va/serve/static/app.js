// Sa2VA web UI: upload an image or video, chat about it, see each mask in its overlay colour, download the masks.
// Plain browser JavaScript, no build step, nothing fetched from outside this server.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const state = { conversationId: null, file: null, busy: false };

function setStatus(message, isError = false) {
  const status = $("#status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

function rgb(color, alpha = 1) {
  return alpha === 1 ? `rgb(${color.join(", ")})` : `rgba(${color.join(", ")}, ${alpha})`;
}

// COCO compressed RLE counts string -> run lengths (pycocotools rleFrString; sa2va.grounding.masks.string_to_counts).
function decodeCounts(text) {
  const counts = [];
  let value = 0, shift = 0, more = false;
  for (let i = 0; i < text.length; i++) {
    const group = text.charCodeAt(i) - 48;
    value |= (group & 0x1f) << shift;
    shift += 5;
    more = (group & 0x20) !== 0;
    if (more) continue;
    if (group & 0x10) value -= 2 ** shift;  // sign-extend
    if (counts.length > 2) value += counts[counts.length - 2];
    counts.push(value);
    value = 0; shift = 0;
  }
  return counts;
}

// RLE -> Uint8Array of height*width in row-major order (1 = mask). COCO runs are column-major.
function decodeRle(rle) {
  const [height, width] = rle.size;
  const mask = new Uint8Array(height * width);
  let position = 0;
  decodeCounts(rle.counts).forEach((count, index) => {
    if (index % 2 === 1) {
      for (let p = position; p < position + count; p++) {
        mask[(p % height) * width + Math.floor(p / height)] = 1;
      }
    }
    position += count;
  });
  return mask;
}

function download(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function maskPng(rle) {
  const [height, width] = rle.size;
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const pixels = context.createImageData(width, height);
  decodeRle(rle).forEach((on, i) => {
    const v = on ? 255 : 0;
    pixels.data.set([v, v, v, 255], i * 4);
  });
  context.putImageData(pixels, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// The answer text with every grounded phrase in its mask's colour.
function renderAnswer(element, data) {
  const phrases = [...data.phrases].sort((a, b) => a.start - b.start);
  let cursor = 0;
  for (const phrase of phrases) {
    if (phrase.start < cursor) continue;
    element.append(data.text.slice(cursor, phrase.start));
    const span = document.createElement("span");
    span.className = "phrase";
    span.textContent = data.text.slice(phrase.start, phrase.end);
    const mask = phrase.mask_index === null ? null : data.masks[phrase.mask_index];
    if (mask) {
      span.style.color = rgb(mask.color);
      span.dataset.object = mask.object_id;
    }
    element.append(span);
    cursor = phrase.end;
  }
  element.append(data.text.slice(cursor));
}

function renderObjects(element, data) {
  const named = new Map(data.phrases.filter((p) => p.mask_index !== null).map((p) => [p.mask_index, p.text]));
  for (const mask of data.masks) {
    const chip = document.createElement("span");
    chip.className = "chip";
    chip.style.background = rgb(mask.color);
    chip.dataset.object = mask.object_id;
    chip.textContent = named.get(mask.object_id) || `object ${mask.object_id}`;
    element.append(chip);
  }
}

function renderTurn(question, data) {
  const turn = $("#turn-template").content.firstElementChild.cloneNode(true);
  $(".question", turn).textContent = question;
  renderAnswer($(".answer", turn), data);
  renderObjects($(".objects", turn), data);
  const image = $(".overlay", turn);
  const overlays = data.overlays || [];
  let frame = 0;
  const showFrame = (t) => {
    frame = t;
    if (overlays.length) image.src = `data:image/png;base64,${overlays[t]}`;
    $(".frame", turn).value = String(t);
    $(".frame-label", turn).textContent = `frame ${t + 1} / ${data.num_frames}`;
  };
  image.hidden = !overlays.length;
  if (data.num_frames > 1) {
    const controls = $(".frames", turn);
    controls.hidden = false;
    const slider = $(".frame", turn);
    slider.max = String(data.num_frames - 1);
    slider.addEventListener("input", () => showFrame(Number(slider.value)));
    let timer = null;
    $(".play", turn).addEventListener("click", (event) => {
      if (timer) { clearInterval(timer); timer = null; event.target.textContent = "Play"; return; }
      event.target.textContent = "Pause";
      timer = setInterval(() => showFrame((frame + 1) % data.num_frames), 200);
    });
  }
  showFrame(0);
  $(".downloads", turn).hidden = !data.masks.length;
  $(".download-json", turn).addEventListener("click", () => {
    const body = { width: data.width, height: data.height, frame_indices: data.frame_indices, masks: data.masks };
    download(new Blob([JSON.stringify(body)], { type: "application/json" }), "masks.json");
  });
  $(".download-png", turn).addEventListener("click", async () => {
    for (const mask of data.masks) {  // the frame on display, one PNG per object (0 = background, 255 = mask)
      const name = `obj${mask.object_id}_frame${String(frame).padStart(5, "0")}.png`;
      download(await maskPng(mask.rle[frame]), name);
    }
  });
  $("#log").prepend(turn);
  return turn;
}

function showPreview(file) {
  const preview = $("#preview");
  preview.replaceChildren();
  if (!file) return;
  const media = document.createElement(file.type.startsWith("video/") ? "video" : "img");
  media.src = URL.createObjectURL(file);
  if (media.tagName === "VIDEO") { media.controls = true; media.muted = true; }
  preview.append(media);
}

function newConversation() {
  state.conversationId = null;
  $("#log").replaceChildren();
  setStatus(state.file ? "New conversation: ask something about the file." : "Choose an image or a video.");
}

async function send(event) {
  event.preventDefault();
  if (state.busy) return;
  const text = $("#text").value.trim();
  if (!state.file && !state.conversationId) { setStatus("Choose an image or a video first.", true); return; }
  if (!text) { setStatus("Type an instruction first.", true); return; }
  const form = new FormData();
  form.append("text", text);
  form.append("overlay", "true");
  if (state.conversationId) form.append("conversation_id", state.conversationId);
  else form.append("file", state.file, state.file.name);
  state.busy = true;
  $("#send").disabled = true;
  setStatus(state.conversationId ? "Answering the follow-up…" : "Uploading and answering…");
  try {
    const response = await fetch("/v1/chat", { method: "POST", body: form });
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const message = data && data.error ? data.error.message : `HTTP ${response.status}`;
      if (response.status === 404 && state.conversationId) state.conversationId = null;  // expired: next send restarts
      setStatus(message, true);
      return;
    }
    state.conversationId = data.conversation_id;
    renderTurn(text, data);
    $("#text").value = "";
    setStatus(`Answered in ${data.elapsed_s.toFixed(2)} s. Ask a follow-up, or choose another file.`);
  } catch (error) {
    setStatus(`Request failed: ${error}`, true);
  } finally {
    state.busy = false;
    $("#send").disabled = false;
  }
}

async function loadModelInfo() {
  try {
    const response = await fetch("/v1/models");
    const model = (await response.json()).data[0];
    $("#model").textContent = [model.id, model.family, model.device, model.dtype].filter(Boolean).join(" · ");
  } catch (error) {
    $("#model").textContent = "model info unavailable";
  }
}

$("#file").addEventListener("change", (event) => {
  state.file = event.target.files[0] || null;
  showPreview(state.file);
  newConversation();
});
$("#new-chat").addEventListener("click", newConversation);
$("#ask").addEventListener("submit", send);
$("#text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("#ask").requestSubmit(); }
});
loadModelInfo();
setStatus("Choose an image or a video.");
