"""Chained shots, as written: ``frame:SHOT[@WHERE]`` image sources and the graph they make.

A job's ``first_frame_image``, ``last_frame_image`` or a ``subject_reference`` image may name a
frame of another job's video instead of a file::

    first_frame_image = "frame:shot-02"          # shot-02's last frame (the default)
    first_frame_image = "frame:shot-02@last"     # the same, said explicitly
    first_frame_image = "frame:shot-02@first"    # its first frame
    first_frame_image = "frame:shot-02@2.5"      # the frame shown at 2.5 s (``@2.5s`` too)

It is a string like any image source, so it can be templated (``frame:shot-{{ prev }}``) and come
from a CSV column. The text after the last ``@`` is the position when it reads as one; a job whose
name itself contains ``@`` is named with an explicit position (``frame:take@2@last``).

This module is pure: it parses references and checks the graph they make within one manifest
(every reference names a job of the manifest; no cycles), in an order where each job comes after
the jobs it takes frames from. Extracting the frames and counting them in the dependent job's
identity is :mod:`vidbatch.chain`'s work, once the source's video exists.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

PREFIX = "frame:"
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)s?$")


@dataclass(frozen=True)
class FrameSpec:
    """A frame of job ``job``'s video: the last (``at`` None, ``first`` False), the first, or
    the one shown at ``at`` seconds."""

    job: str
    at: float | None = None
    first: bool = False

    @property
    def position(self) -> str:
        """``last``, ``first`` or ``2.5s``: how the frame is named in files and messages."""
        if self.first:
            return "first"
        if self.at is None:
            return "last"
        return f"{self.at:g}s"

    @property
    def text(self) -> str:
        """The canonical source text: ``frame:shot-02@last``."""
        return f"{PREFIX}{self.job}@{self.position}"

    def describe(self) -> str:
        """``the last frame of shot-02``, ``the frame at 2.5s of shot-02``."""
        if self.at is not None and not self.first:
            return f"the frame at {self.position} of {self.job}"
        return f"the {self.position} frame of {self.job}"


def is_frame(source: object) -> bool:
    return isinstance(source, str) and source.startswith(PREFIX)


def parse(source: str) -> FrameSpec:
    """The frame ``source`` (``frame:...``) names; ValueError saying what is wrong."""
    if not source.startswith(PREFIX):
        raise ValueError(f"{source!r} is not a frame reference (frame:SHOT or frame:SHOT@last|first|SECONDS)")
    body = source[len(PREFIX):].strip()
    name, at, where = body.rpartition("@")
    spec: FrameSpec | None = None
    if at:
        word = where.strip().lower()
        if word == "last":
            spec = FrameSpec(name.strip())
        elif word == "first":
            spec = FrameSpec(name.strip(), first=True)
        elif _SECONDS.match(word):
            seconds = float(word.rstrip("s"))
            if not math.isfinite(seconds):
                raise ValueError(f"{source!r}: the time must be a number of seconds")
            spec = FrameSpec(name.strip(), at=seconds)
    if spec is None:
        spec = FrameSpec(body)
    if not spec.job:
        raise ValueError(f"{source!r} names no job; write frame:SHOT, frame:SHOT@first or frame:SHOT@2.5")
    return spec


@dataclass(frozen=True)
class Reference:
    """Job ``job`` takes ``spec`` in field ``field`` (``first_frame_image``,
    ``subject_reference[0].image[0]``)."""

    job: str
    field: str
    spec: FrameSpec


def unknown(references: Iterable[Reference], names: Sequence[str]) -> list[tuple[Reference, str]]:
    """References to a job the manifest does not have, each with its message."""
    known = set(names)
    out = []
    for ref in references:
        if ref.spec.job in known:
            continue
        near = difflib.get_close_matches(ref.spec.job, list(names), n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]}?" if near else f" (its jobs: {', '.join(list(names)[:8])}{', ...' if len(names) > 8 else ''})"
        out.append((ref, f"{ref.spec.text} names no job of this manifest{hint}"))
    return out


def cycles(edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Each cycle of the graph ``job -> jobs it takes frames from``, once, as the list of jobs
    around it (the first repeated at the end): ``[shot-01, shot-02, shot-01]``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    found: list[list[str]] = []
    seen_cycles: set[frozenset[str]] = set()
    for start in edges:
        if state.get(start):
            continue
        path: list[str] = []
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(edges.get(start, ())))]
        state[start] = 1
        path.append(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            mark = state.get(child)
            if mark == 1:
                loop = path[path.index(child):] + [child]
                key = frozenset(loop)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    found.append(loop)
            elif mark is None and child in edges:
                state[child] = 1
                path.append(child)
                stack.append((child, iter(edges.get(child, ()))))
    return found


def order(names: Sequence[str], edges: Mapping[str, Sequence[str]]) -> list[str]:
    """``names`` with every job after the jobs it takes frames from, otherwise as given (a
    stable topological order). The graph must have no cycle (:func:`cycles`)."""
    placed: set[str] = set()
    out: list[str] = []
    for name in names:
        if name in placed:
            continue
        # depth first, without recursion: a storyboard can chain thousands of shots
        stack: list[tuple[str, Iterator[str]]] = [(name, iter(edges.get(name, ())))]
        on_path = {name}
        while stack:
            node, sources = stack[-1]
            source = next(sources, None)
            if source is None:
                stack.pop()
                on_path.discard(node)
                placed.add(node)
                out.append(node)
            elif source not in placed and source not in on_path:
                on_path.add(source)
                stack.append((source, iter(edges.get(source, ()))))
    return out
