"""Write scikit-learn's 1,797 digit images as a folder of class sub-folders of PNG files (16x16,
grey), so the image-folder source can be tried on real pictures: FOLDER/digit_0/0000.png ...

    python benchmarks/studies/make_image_folder.py /tmp/digit_pictures
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--size", type=int, default=16)
    args = parser.parse_args()
    d = load_digits()
    root = Path(args.folder)
    for i, (image, label) in enumerate(zip(d.images, d.target)):
        folder = root / f"digit_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        pic = Image.fromarray((image * 255 / 16).astype(np.uint8), "L").resize((args.size, args.size), Image.Resampling.BILINEAR)
        pic.save(folder / f"{i:04d}.png")
    print(f"wrote {len(d.images)} pictures in {len(set(d.target))} class folders under {root}")


if __name__ == "__main__":
    main()
