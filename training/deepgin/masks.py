"""The three mask types of the AIM 2020 extreme inpainting challenge, which DeepGIN trains on.

Every training image appears with one mask of each type in the same batch: a rectangle covering
30-70% of each side, free-form brush strokes, and a cellular-automata mask (random noise smoothed
by a cave-generation rule into irregular blobs, upscaled with smooth edges). All generators are deterministic given a
`numpy.random.Generator`, and return H x W float32 arrays with 1 = hole.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import convolve


@dataclass(frozen=True)
class AIMMaskConfig:
    rect_min_fraction: float = 0.3
    rect_max_fraction: float = 0.7
    strokes_min: int = 4
    strokes_max: int = 10
    stroke_vertices_max: int = 12
    stroke_width_fraction: tuple[float, float] = (0.04, 0.1)  # of the shorter side
    ca_grid: int = 32                 # automaton grid cells along the shorter side
    ca_fill: float = 0.45             # initial probability of a hole cell
    ca_steps: int = 5
    ca_birth: int = 5                 # a cell becomes a hole with >= this many hole neighbours
    ca_survive: int = 4               # a hole cell stays with >= this many hole neighbours

    def __post_init__(self) -> None:
        # YAML gives a list; a tuple keeps the config hashable
        object.__setattr__(self, "stroke_width_fraction", tuple(self.stroke_width_fraction))


def rectangle_mask(height: int, width: int, rng: np.random.Generator, config: AIMMaskConfig = AIMMaskConfig()) -> np.ndarray:
    box_h = int(round(height * rng.uniform(config.rect_min_fraction, config.rect_max_fraction)))
    box_w = int(round(width * rng.uniform(config.rect_min_fraction, config.rect_max_fraction)))
    top = int(rng.integers(0, height - box_h + 1))
    left = int(rng.integers(0, width - box_w + 1))
    mask = np.zeros((height, width), np.float32)
    mask[top:top + box_h, left:left + box_w] = 1
    return mask


def free_form_mask(height: int, width: int, rng: np.random.Generator, config: AIMMaskConfig = AIMMaskConfig()) -> np.ndarray:
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    short = min(height, width)
    for _ in range(int(rng.integers(config.strokes_min, config.strokes_max + 1))):
        stroke_width = max(1, int(short * rng.uniform(*config.stroke_width_fraction)))
        x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        points = [(x, y)]
        for _ in range(int(rng.integers(1, config.stroke_vertices_max + 1))):
            angle = rng.uniform(0, 2 * np.pi)
            length = rng.uniform(0.05, 0.25) * short
            x = float(np.clip(x + length * np.cos(angle), 0, width - 1))
            y = float(np.clip(y + length * np.sin(angle), 0, height - 1))
            points.append((x, y))
        draw.line(points, fill=255, width=stroke_width, joint="curve")
        for px, py in points:  # round caps
            r = stroke_width / 2
            draw.ellipse((px - r, py - r, px + r, py + r), fill=255)
    return (np.asarray(canvas) > 0).astype(np.float32)


_NEIGHBOURS = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]])


def cellular_automata_mask(height: int, width: int, rng: np.random.Generator,
                           config: AIMMaskConfig = AIMMaskConfig()) -> np.ndarray:
    scale = min(height, width) / config.ca_grid
    grid_h, grid_w = max(1, round(height / scale)), max(1, round(width / scale))
    cells = rng.random((grid_h, grid_w)) < config.ca_fill
    for _ in range(config.ca_steps):
        neighbours = convolve(cells.astype(np.int32), _NEIGHBOURS, mode="constant", cval=0)
        cells = np.where(cells, neighbours >= config.ca_survive, neighbours >= config.ca_birth)
    upscaled = Image.fromarray(cells.astype(np.uint8) * 255).resize((width, height), Image.BILINEAR)
    return (np.asarray(upscaled) >= 128).astype(np.float32)  # smooth edges, no blocks


MASK_TYPES = {"rectangle": rectangle_mask, "free_form": free_form_mask, "cellular_automata": cellular_automata_mask}


def three_masks(height: int, width: int, rng: np.random.Generator, config: AIMMaskConfig = AIMMaskConfig()) -> np.ndarray:
    """One mask of each type, 3 x H x W: each image of a batch is seen with all three."""
    return np.stack([make(height, width, rng, config) for make in MASK_TYPES.values()])
