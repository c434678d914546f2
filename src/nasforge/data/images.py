"""A folder of class sub-folders of pictures (PNG / JPEG / BMP / GIF / WebP) as an image dataset.

    my_pictures/cat/001.jpg, my_pictures/cat/002.png, my_pictures/dog/a.jpeg, ...

`ImageFolder` is a map-style torch Dataset that reads one picture per item: converted to RGB (or
to grey when every picture is grey) and resized to `size` x `size`, as floats in [0, 1]; the
sub-folder name is the label. A JPEG is decoded at reduced size (Pillow's `draft`: the decoder
scales by 1/2, 1/4 or 1/8 while it decodes), so a 1024 x 1024 photo read for a 32 x 32 network costs
a 128 x 128 decode, not a 12 MB bitmap. It has torchvision's ImageFolder attributes (`classes`,
`class_to_idx`, `samples`, `targets`), needs no torchvision, and pickles as its list of paths, which
is what executor workers receive.

`load_image_folder` reads every item into one array (the in-memory path, for folders that fit):
its peak memory is that array, one picture at a time on top. Unreadable files are an error naming
the file, never skipped silently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
GREY_MODES = ("1", "L", "I", "I;16", "F")


def image_files(folder: Path) -> list[tuple[Path, str]]:
    """(file, class) pairs of a folder of class sub-folders, in a fixed order."""
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{folder}: no class sub-folders (expected {folder}/CLASS/IMAGE.png ...)")
    files = [(f, c.name) for c in classes for f in sorted(c.rglob("*")) if f.is_file() and f.suffix.lower() in EXTENSIONS]
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(sorted(EXTENSIONS))}) in its class sub-folders")
    return files


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - pillow is a declared dependency
        raise DataError("image folders need Pillow: pip install pillow") from exc
    return Image


def read_picture(path: Path, size: int, mode: str) -> np.ndarray:
    """One picture as a C x size x size float32 array in [0, 1] (C = 1 for mode 'L', 3 for 'RGB')."""
    Image = _pillow()
    from PIL import UnidentifiedImageError

    try:
        with Image.open(path) as im:
            # JPEG only: decode at the smallest 1/2^k scale still >= size (no-op for other formats).
            im.draft(mode, (size, size))
            picture = im.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None
    a = np.asarray(picture, dtype=np.float32) / 255.0
    return a[None] if mode == "L" else a.transpose(2, 0, 1)


def folder_mode(files: list[tuple[Path, str]]) -> str:
    """'L' when every picture is grey, else 'RGB'; reads only the files' headers."""
    Image = _pillow()
    from PIL import UnidentifiedImageError

    for path, _ in files:
        try:
            with Image.open(path) as im:  # lazy: the header only, nothing decoded
                if im.mode not in GREY_MODES:
                    return "RGB"
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{path}: not a readable image ({exc})") from None
    return "L"


class ImageFolder(torch.utils.data.Dataset):
    """Pictures of a folder of class sub-folders, one per item: (C x size x size float tensor, class index)."""

    def __init__(self, root: str | Path, size: int = 32, mode: str | None = None):
        if size < 1:
            raise DataError(f"image size must be positive, got {size}")
        self.root = Path(root).expanduser()
        self.size = size
        files = image_files(self.root)
        self.classes = sorted({label for _, label in files})
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples = [(str(path), self.class_to_idx[label]) for path, label in files]
        self.targets = [label for _, label in self.samples]
        self.mode = mode or folder_mode(files)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return torch.from_numpy(read_picture(Path(path), self.size, self.mode)), label

    def __repr__(self) -> str:
        return f"ImageFolder({str(self.root)!r}, size={self.size}, {len(self)} pictures, {len(self.classes)} classes)"


def load_image_folder(folder: str | Path, size: int = 32) -> dict[str, np.ndarray]:
    """x: N x C x size x size floats in [0, 1] (C = 1 when every picture is grey, else 3); y: class names."""
    images = ImageFolder(folder, size)
    channels = 1 if images.mode == "L" else 3
    x = np.empty((len(images), channels, size, size), dtype=np.float32)
    for i, (path, _) in enumerate(images.samples):
        x[i] = read_picture(Path(path), size, images.mode)
    return {"x": x, "y": np.array([images.classes[label] for label in images.targets])}
