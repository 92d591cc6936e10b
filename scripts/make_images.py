#!/usr/bin/python3
"""Makes the photographs of assets/images/ from Debian's python3-skimage 0.19.3 (run by hand; the PNGs are
committed, so neither skimage nor this script is needed to build or test attnlab).

Usage: scripts/make_images.py [OUT_DIR]   (default: assets/images next to this script)

Each photo is read from skimage's data folder, downsampled by area averaging (Pillow's BOX filter) to
256 pixels on its long side and written as an 8-bit RGB PNG without metadata. The change pair is an edited
copy of coffee: one rectangle is replaced by a colour-rotated copy of another part of the same photo; its
mask (255 inside the rectangle, 0 elsewhere) is written beside it.
"""
import os
import sys

import numpy as np
from PIL import Image

SKIMAGE_DATA = "/usr/lib/python3/dist-packages/skimage/data"
LONG_SIDE = 256
PHOTOS = ["astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg"]
# The changed rectangle of coffee-changed.png, in pixels of the 256×171 coffee.png: x0, y0, x1, y1 (end exclusive).
CHANGE = (150, 40, 200, 80)
# Where its new content is copied from (the same size, elsewhere in the photo).
SOURCE = (20, 110)


def downsample(image):
    w, h = image.size
    scale = LONG_SIDE / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return image.convert("RGB").resize(size, Image.BOX)


def save(array_or_image, path):
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    image.save(path, format="PNG", optimize=True)  # no text chunks, no gamma: only the pixels
    print(f"{path}: {image.size[0]}x{image.size[1]} {image.mode}, {os.path.getsize(path)} bytes")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets", "images")
    os.makedirs(out, exist_ok=True)
    for name in PHOTOS:
        save(downsample(Image.open(os.path.join(SKIMAGE_DATA, name))), os.path.join(out, os.path.splitext(name)[0] + ".png"))
    coffee = np.asarray(Image.open(os.path.join(out, "coffee.png")).convert("RGB")).copy()
    x0, y0, x1, y1 = CHANGE
    sx, sy = SOURCE
    patch = coffee[sy:sy + (y1 - y0), sx:sx + (x1 - x0)]
    changed = coffee.copy()
    changed[y0:y1, x0:x1] = patch[:, :, [2, 0, 1]]  # colour rotated: R, G, B ← B, R, G
    mask = np.zeros(coffee.shape[:2], dtype=np.uint8)
    mask[y0:y1, x0:x1] = 255
    save(changed, os.path.join(out, "coffee-changed.png"))
    save(Image.fromarray(mask, mode="L"), os.path.join(out, "coffee-changed-mask.png"))


if __name__ == "__main__":
    main()
