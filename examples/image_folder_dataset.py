"""An image folder given as a torchvision-style Dataset, read a batch at a time.

nasforge accepts any map-style dataset: an object with `__len__` and `__getitem__` returning
(image, label). torchvision's `ImageFolder(root, transform=...)` is one and is used the same way;
this example writes its own (torchvision is not needed, and nasforge never imports it), with a
transform that resizes each picture as it is read, as torchvision's transforms do.

The pictures are generated into a temporary folder: 64 x 64 colour images of three shapes (circle,
square, triangle) of random size, position and colour on a noisy background, one sub-folder per class.

    python examples/image_folder_dataset.py --per-class 200 --trials 10 --epochs 6 --out runs/shapes

`stream=True` keeps the pictures on disk: DataLoader workers (`data_workers`) decode and resize each
one when a batch needs it, so memory holds a few batches, not the folder.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import nasforge

SHAPES = ("circle", "square", "triangle")


def make_pictures(root: Path, per_class: int, seed: int = 0, side: int = 64) -> Path:
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        (root / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(0, 80, (side, side, 3), dtype=np.uint8)
            picture = Image.fromarray(noise)
            draw = ImageDraw.Draw(picture)
            r = int(rng.integers(8, 20))
            cx, cy = (int(v) for v in rng.integers(r, side - r, 2))
            colour = tuple(int(v) for v in rng.integers(120, 256, 3))
            if shape == "circle":
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
            elif shape == "square":
                draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
            else:
                draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
            picture.save(root / shape / f"{i:04d}.jpg", quality=90)
    return root


class Resize:
    """A torchvision-style transform: PIL image -> C x size x size float tensor in [0, 1]."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, picture: Image.Image) -> torch.Tensor:
        picture = picture.convert("RGB").resize((self.size, self.size), Image.Resampling.BILINEAR)
        return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0).permute(2, 0, 1)


class PictureFolder(torch.utils.data.Dataset):
    """What torchvision.datasets.ImageFolder does: classes from sub-folders, one picture per item."""

    def __init__(self, root: str | Path, transform: Resize | None = None):
        self.classes = sorted(p.name for p in Path(root).iterdir() if p.is_dir())
        self.samples = [(path, i) for i, c in enumerate(self.classes) for path in sorted((Path(root) / c).glob("*.jpg"))]
        self.targets = [label for _, label in self.samples]  # lets nasforge split without reading any picture
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        with Image.open(path) as picture:
            return (self.transform(picture) if self.transform else picture.copy()), label


def main(argv: list[str] | None = None) -> nasforge.Study:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader processes decoding pictures")
    parser.add_argument("--out", default="runs/shapes")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="nasforge-shapes-") as tmp:
        folder = make_pictures(Path(tmp), args.per_class)
        dataset = PictureFolder(folder, transform=Resize(32))  # or torchvision.datasets.ImageFolder(folder, transform=...)
        study = nasforge.search(
            data=dataset, stream=True, data_workers=args.workers, trials=args.trials, epochs=args.epochs, batch_size=32,
            max_blocks=4, channels=(8, 16, 32), strategy="evolution", population=5, sample_size=2, out=args.out, progress=False,
        )
        summary = study.store.get("dataset")
        print(f"{len(dataset)} pictures in {len(dataset.classes)} classes, streamed: {summary.get('streamed', False)}, "
              f"input {summary['input_shape']}")
        print(f"best trial {study.best.id}: validation accuracy {study.best.reward:.3f}, "
              f"test accuracy {study.final['test']['accuracy']:.3f} (chance {1 / len(SHAPES):.3f})")
    return study


if __name__ == "__main__":
    main()
