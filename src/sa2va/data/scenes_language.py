"""What can be said about a scene: referring expressions, questions with answers, grounded captions, region questions.

Every expression refers to exactly one shape and every answer is unambiguous: an expression or question is only
offered when the scene makes it so (a colour named alone is unique, the leftmost shape is clearly left of the
others, ...). Positions of video shapes are not used (they change); motion is.
"""

from __future__ import annotations

from dataclasses import dataclass

from sa2va.data.scenes import Scene, SceneObject

_GAP = 10.0  # pixels that make "left of", "leftmost", "on the left" unambiguous
_AREA_RATIO = 1.5  # the largest shape is at least this much larger than the next


@dataclass(frozen=True)
class Expression:
    """A phrase naming one shape.

    Attributes:
        text: e.g. `"the red circle"`, `"the shape left of the blue square"`, `"the shape moving up"`.
        target: index of the shape in `scene.objects`.
        kind: `attribute`, `relation`, `size`, `position` or `motion`.
    """

    text: str
    target: int
    kind: str


@dataclass(frozen=True)
class Question:
    """A question with its short answer.

    Attributes:
        question: e.g. `"What colour is the circle?"`.
        answer: e.g. `"Red."`.
        kind: `colour`, `shape`, `count`, `position` or `motion`.
    """

    question: str
    answer: str
    kind: str


def _area(obj: SceneObject) -> float:
    factor = {"circle": 3.1416, "square": 4 * 0.85**2, "triangle": 1.299 * 1.15**2}[obj.shape]
    return factor * obj.radius**2


def _unique(values: list, value) -> bool:
    return values.count(value) == 1


def referring_expressions(scene: Scene) -> list[Expression]:
    """Every unambiguous expression of the scene, in a fixed order."""
    objs = scene.objects
    colours, shapes = [o.colour for o in objs], [o.shape for o in objs]
    out = []
    for i, o in enumerate(objs):
        out.append(Expression(f"the {o.name}", i, "attribute"))
        if _unique(colours, o.colour):
            out.append(Expression(f"the {o.colour} shape", i, "attribute"))
        if _unique(shapes, o.shape):
            out.append(Expression(f"the {o.shape}", i, "attribute"))
    areas = [_area(o) for o in objs]
    order = sorted(range(len(objs)), key=areas.__getitem__)
    if areas[order[-1]] >= _AREA_RATIO * areas[order[-2]]:
        out.append(Expression("the largest shape", order[-1], "size"))
    if areas[order[1]] >= _AREA_RATIO * areas[order[0]]:
        out.append(Expression("the smallest shape", order[0], "size"))
    if scene.is_video:
        directions = [o.direction for o in objs]
        for i, o in enumerate(objs):
            if o.direction is not None:
                out.append(Expression(f"the shape moving {o.direction}", i, "motion"))
            elif _unique(directions, None):
                out.append(Expression("the shape that is not moving", i, "motion"))
        return out
    xs, ys = [o.x for o in objs], [o.y for o in objs]
    for name, values, sign in (("leftmost", xs, 1), ("rightmost", xs, -1), ("topmost", ys, 1), ("bottom", ys, -1)):
        ranked = sorted(range(len(objs)), key=lambda k: sign * values[k])
        if sign * (values[ranked[1]] - values[ranked[0]]) >= _GAP:
            text = "the bottom shape" if name == "bottom" else f"the {name} shape"
            out.append(Expression(text, ranked[0], "position"))
    for a, anchor in enumerate(objs):
        for relation, values, sign in (("left of", xs, -1), ("right of", xs, 1), ("above", ys, -1), ("below", ys, 1)):
            beyond = [k for k in range(len(objs)) if k != a and sign * (values[k] - values[a]) >= _GAP]
            unclear = [k for k in range(len(objs)) if k != a and abs(values[k] - values[a]) < _GAP]
            if len(beyond) == 1 and not unclear:
                out.append(Expression(f"the shape {relation} the {anchor.name}", beyond[0], "relation"))
    return out


def questions(scene: Scene) -> list[Question]:
    """Every unambiguous question of the scene with its answer, in a fixed order."""
    objs = scene.objects
    colours, shapes = [o.colour for o in objs], [o.shape for o in objs]
    out = []
    for o in objs:
        if _unique(shapes, o.shape):
            out.append(Question(f"What colour is the {o.shape}?", f"{o.colour.capitalize()}.", "colour"))
        if _unique(colours, o.colour):
            out.append(Question(f"What shape is the {o.colour} object?", f"A {o.shape}.", "shape"))
    if scene.is_video:
        for o in objs:
            answer = f"{o.direction.capitalize()}." if o.direction else "It is not moving."
            out.append(Question(f"Which way is the {o.name} moving?", answer, "motion"))
        return out
    out.append(Question("How many shapes are there?", f"{len(objs)}.", "count"))
    half = scene.size / 2
    for o in objs:
        if abs(o.x - half) >= 12:
            side = "Left." if o.x < half else "Right."
            out.append(Question(f"Is the {o.name} on the left or on the right?", side, "position"))
        if abs(o.y - half) >= 12:
            side = "Top." if o.y < half else "Bottom."
            out.append(Question(f"Is the {o.name} at the top or at the bottom?", side, "position"))
    return out


def grounded_caption(scene: Scene) -> tuple[str, list[int]]:
    """A GCG answer naming every shape, left to right, and the shapes' indices.

    E.g. `"<p> A [SEG] red circle </p>, <p> a [SEG] blue square </p> and <p> a [SEG] white triangle </p>."`: each
    phrase holds its `[SEG]` before the words naming the shape (see `scenes_dataset.referring_answer` for why);
    `sa2va.grounding.gcg.parse_grounded_text` pairs a `[SEG]` inside a phrase with that phrase.
    """
    order = sorted(range(len(scene.objects)), key=lambda k: scene.objects[k].x)
    parts = [f"<p> {'A' if n == 0 else 'a'} [SEG] {scene.objects[k].name} </p>" for n, k in enumerate(order)]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return text + ".", order


def region_answer(obj: SceneObject) -> str:
    """The answer to "What is region1?" about `obj`: `"A small red circle."`."""
    return f"A {obj.size} {obj.name}."


__all__ = ["Expression", "Question", "grounded_caption", "questions", "referring_expressions", "region_answer"]
