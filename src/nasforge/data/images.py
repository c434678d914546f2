"""A folder of class sub-folders of pictures (PNG / JPEG / BMP / GIF / WebP) as an image dataset.

    my_pictures/cat/001.jpg, my_pictures/cat/002.png, my_pictures/dog/a.jpeg, ...

Each picture is read with Pillow, converted to RGB (or to grey when every picture is grey) and
resized to `size` x `size`; the sub-folder name is the label. Unreadable files are an error naming
the file, never skipped silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


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


def load_image_folder(folder: str | Path, size: int = 32) -> dict[str, np.ndarray]:
    """x: N x C x size x size floats in [0, 1] (C = 1 when every picture is grey, else 3); y: class names."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:  # pragma: no cover - pillow is a declared dependency
        raise DataError("image folders need Pillow: pip install pillow") from exc
    if size < 1:
        raise DataError(f"image size must be positive, got {size}")
    folder = Path(folder).expanduser()
    files = image_files(folder)
    pictures = []
    for path, _ in files:
        try:
            with Image.open(path) as im:
                im.load()
                pictures.append(im.copy())
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{path}: not a readable image ({exc})") from None
    grey = all(p.mode in ("1", "L", "I", "I;16", "F") for p in pictures)
    mode = "L" if grey else "RGB"
    arrays = []
    for p in pictures:
        p = p.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
        a = np.asarray(p, dtype=np.float32) / 255.0
        arrays.append(a[None] if grey else a.transpose(2, 0, 1))
    return {"x": np.stack(arrays), "y": np.array([label for _, label in files])}
