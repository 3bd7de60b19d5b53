"""The HTTP app: routes that validate uploads, queue one shared model's inference and return RLE masks.

```python
from sa2va.serve import ServeLimits, create_app
app = create_app(model, ServeLimits(max_frames=50))   # any loaded Sa2VAModel (or a tiny one in tests)
# uvicorn.run(app, host="127.0.0.1", port=8000)  — or `sa2va serve`
```
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Form, UploadFile
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError

from sa2va import __version__
from sa2va.errors import Sa2VAConfigError, Sa2VAInputError, Sa2VATimeoutError
from sa2va.outputs import ChatHistory
from sa2va.serve import schemas
from sa2va.serve.http_errors import BodySizeLimit, install_error_handlers
from sa2va.serve.inference import TurnResult, chat_prompt, colour, run_turn, segment_prompt
from sa2va.serve.limits import MIB, ServeLimits
from sa2va.serve.media import Media, inspect_media, save_upload
from sa2va.serve.sessions import ConversationStore
from sa2va.serve.worker import InferenceWorker

STATIC = Path(__file__).resolve().parent / "static"
ERRORS = {status: {"model": schemas.ErrorResponse} for status in (404, 413, 422, 503, 504)}
OVERLAY_HELP = "also return the masks blended onto each frame, as base64 PNGs"
FORM_ROOM_BYTES = MIB
DECODE_THREADS = 2  # multipart overhead and form fields (history) on top of the file itself


@dataclass
class ServerState:
    """What the routes share: one model (used under `model_lock`), the limits, the worker pools, conversations.

    `decoder` checks uploads (image decoding, video probing) on a few threads of its own, so at most that many
    uploads are decoded at once, whatever the number of connections.
    """

    model: object
    model_id: str
    limits: ServeLimits
    worker: InferenceWorker
    decoder: ThreadPoolExecutor
    conversations: ConversationStore
    upload_dir: Path
    model_lock: threading.Lock


def create_app(model, limits: ServeLimits | None = None, *, model_id: str | None = None) -> FastAPI:
    """Build the app around an already loaded model.

    Args:
        model: a `Sa2VAModel` in eval mode with its processor attached (anything with the same `predict` and
            `predict_video_stream` works). It is loaded once by the caller and shared by every request.
        limits: upload, frame, time and concurrency limits (defaults: :class:`ServeLimits`).
        model_id: the name `/v1/models` and `/health` report (default: the model's checkpoint path, or "sa2va").

    Returns:
        A FastAPI app serving `/v1/segment`, `/v1/chat`, `/v1/models`, `/health`, `/docs` and the web UI at `/`.

    Raises:
        Sa2VAConfigError: the model has no tokenizer/processor attached (every request would fail).
    """
    if hasattr(model, "processor") and model.processor is None:
        raise Sa2VAConfigError(
            "the model has no tokenizer/processor attached, so it cannot answer requests: load it with "
            "Sa2VAModel.from_pretrained(folder) or call model.attach_processor(processor) first."
        )
    limits = limits or ServeLimits()
    config = getattr(model, "config", None)
    model_id = model_id or getattr(config, "_name_or_path", "") or "sa2va"
    state = ServerState(
        model=model,
        model_id=str(model_id),
        limits=limits,
        worker=InferenceWorker(limits.max_concurrency, limits.max_queue),
        decoder=ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="sa2va-decode"),
        conversations=ConversationStore(limits.max_conversations, limits.conversation_ttl_s),
        upload_dir=Path(tempfile.gettempdir()) / f"sa2va-serve-{uuid.uuid4().hex}",  # created on first upload
        model_lock=threading.Lock(),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        state.worker.shutdown()
        state.decoder.shutdown(wait=False, cancel_futures=True)
        state.conversations.close()
        shutil.rmtree(state.upload_dir, ignore_errors=True)

    app = FastAPI(
        title="Sa2VA",
        version=__version__,
        description="Grounded chat and segmentation of images and videos. Masks are COCO RLE; errors are "
        '`{"error": {"type", "message"}}`. The web UI is at `/`.',
        lifespan=lifespan,
    )
    app.state.sa2va = state
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_upload_bytes + FORM_ROOM_BYTES)
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/health", response_model=schemas.Health, tags=["service"])
    async def health() -> schemas.Health:
        """Liveness and load: requests running and queued."""
        return schemas.Health(
            model=state.model_id,
            running=state.worker.running,
            queued=state.worker.queued,
            max_concurrency=limits.max_concurrency,
            max_queue=limits.max_queue,
            conversations=len(state.conversations),
        )

    @app.get("/v1/models", response_model=schemas.ModelList, tags=["service"])
    async def models() -> schemas.ModelList:
        """The one model this server answers with."""
        return schemas.ModelList(data=[_model_info(state)])

    @app.post("/v1/segment", response_model=schemas.SegmentResponse, responses=ERRORS, tags=["inference"])
    async def segment(
        file: Annotated[UploadFile, File(description="an image (jpg, png, ...) or a video (mp4, webm, ...)")],
        text: Annotated[str, Form(description='what to segment, e.g. "the red car" (text with <image> is sent as is)')],
        overlay: Annotated[bool, Form(description=OVERLAY_HELP)] = False,
        fps: Annotated[float | None, Form(description="videos: sample at most this many frames per second")] = None,
    ) -> schemas.SegmentResponse:
        """Segment what `text` refers to: one mask per `[SEG]` of the answer, per frame for videos."""
        start = time.perf_counter()
        prompt = segment_prompt(_check_text(text, limits))
        media = await _receive_media(state, file, fps)
        try:
            result = await state.worker.run(
                lambda cancel: run_turn(model, state.model_lock, media, prompt, None, overlay, cancel),
                limits.timeout_s,
            )
        finally:
            media.discard()
        return schemas.SegmentResponse(**_answer(media, result, start))

    @app.post("/v1/chat", response_model=schemas.ChatResponse, responses=ERRORS, tags=["inference"])
    async def chat(
        text: Annotated[str, Form(description="the instruction or question, e.g. 'What is the person holding?'")],
        file: Annotated[UploadFile | None, File(description="image or video; starts a new conversation")] = None,
        conversation_id: Annotated[str | None, Form(description="continue this conversation (no file then)")] = None,
        history: Annotated[str | None, Form(description="with a file: the JSON `history` of an earlier answer")] = None,
        overlay: Annotated[bool, Form(description=OVERLAY_HELP)] = False,
        fps: Annotated[float | None, Form(description="videos: sample at most this many frames per second")] = None,
    ) -> schemas.ChatResponse:
        """One chat turn. Start with a file, then send `conversation_id` with each follow-up; or keep the state
        yourself by sending the file again with the `history` of the previous answer."""
        start = time.perf_counter()
        deadline = time.monotonic() + limits.timeout_s
        text = _check_text(text, limits)
        has_file = file is not None and bool(file.filename)
        if conversation_id:
            if has_file or history:
                raise Sa2VAInputError(
                    "a follow-up sends conversation_id alone; to start over send a file (and optionally history) "
                    "without conversation_id."
                )
            conversation = state.conversations.get(conversation_id)
            conversation.waiting += 1  # not dropped while this turn waits for it
            try:
                await asyncio.wait_for(conversation.lock.acquire(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError as error:
                raise Sa2VATimeoutError(
                    f"conversation {conversation_id!r} was busy with another turn for longer than --timeout-s "
                    f"({limits.timeout_s:g} s)."
                ) from error
            finally:
                conversation.waiting -= 1
            try:
                media, past = conversation.media, conversation.history
                prompt = chat_prompt(text, first_turn=not past.past_text)
                result = await state.worker.run(
                    lambda cancel: run_turn(model, state.model_lock, media, prompt, past, overlay, cancel),
                    deadline - time.monotonic(),
                )
                state.conversations.update(conversation, result.history)
            finally:
                conversation.lock.release()
        else:
            if not has_file:
                raise Sa2VAInputError(
                    "a new conversation needs a file (an image or a video); to continue one, send its conversation_id."
                )
            past = _parse_history(history)
            media = await _receive_media(state, file, fps)
            prompt = chat_prompt(text, first_turn=not past.past_text)
            try:
                result = await state.worker.run(
                    lambda cancel: run_turn(model, state.model_lock, media, prompt, past, overlay, cancel),
                    deadline - time.monotonic(),
                )
            except BaseException:
                media.discard()
                raise
            conversation = state.conversations.create(media, result.history)
        return schemas.ChatResponse(
            **_answer(media, result, start),
            conversation_id=conversation.id,
            history=schemas.History(past_text=result.history.past_text, turns=result.history.turns),
        )

    return app


def _check_text(text: str, limits: ServeLimits) -> str:
    if not text or not text.replace("<image>", "").strip():
        raise Sa2VAInputError("text is empty; expected an instruction or what to segment, e.g. 'the red car'.")
    if len(text) > limits.max_text_chars:
        raise Sa2VAInputError(f"text has {len(text)} characters; this server takes at most {limits.max_text_chars}.")
    return text


def _parse_history(raw: str | None) -> ChatHistory:
    """The `history` form field: the JSON `history` object of an earlier chat answer."""
    if not raw:
        return ChatHistory()
    try:
        parsed = schemas.History.model_validate(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as error:
        raise Sa2VAInputError(
            'history must be the JSON "history" object of an earlier /v1/chat answer, '
            f'{{"past_text": "...", "turns": [["question", "answer"], ...]}}; could not read it ({error}).'.replace(
                "\n", " "
            )
        ) from error
    return ChatHistory(past_text=parsed.past_text, turns=[tuple(turn) for turn in parsed.turns])


async def _receive_media(state: ServerState, file: UploadFile, fps: float | None) -> Media:
    """Store the upload within the size limit and inspect it on the decoder threads."""
    path = await save_upload(file, state.upload_dir, state.limits.max_upload_bytes)
    try:
        return await asyncio.get_running_loop().run_in_executor(
            state.decoder, inspect_media, path, file.filename or "upload", state.limits.max_frames, fps
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _answer(media: Media, result: TurnResult, start: float) -> dict:
    return {
        "kind": media.kind,
        "text": result.text,
        "raw_text": result.raw_text,
        "phrases": [schemas.Phrase(text=p.text, start=p.start, end=p.end, mask_index=p.mask_index)
                    for p in result.phrases],
        "masks": [schemas.MaskObject(object_id=i, color=colour(i), rle=rles) for i, rles in enumerate(result.rles)],
        "width": media.width,
        "height": media.height,
        "num_frames": media.num_frames,
        "frame_indices": media.frame_indices,
        "overlays": result.overlays,
        "elapsed_s": round(time.perf_counter() - start, 4),
    }


def _model_info(state: ServerState) -> schemas.ModelInfo:
    model = state.model
    config = getattr(model, "config", None)
    device = getattr(model, "device", None)
    dtype = getattr(model, "dtype", None)
    return schemas.ModelInfo(
        id=state.model_id,
        family=getattr(config, "family", None),
        device=str(device) if device is not None else None,
        dtype=str(dtype).removeprefix("torch.") if dtype is not None else None,
    )


__all__ = ["create_app", "ServerState"]
