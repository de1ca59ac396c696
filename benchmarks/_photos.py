"""Real photographs that ship inside packages on the registry, cut into crops.

No downloads: scikit-learn's two sample photos, scikit-image's colour photographs and
matplotlib's Grace Hopper portrait. Crops are written as PNG files into one folder without
class sub-folders: the unlabelled image folder a user brings (``edgekit.load_dataset``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# scikit-image's colour photographs (its synthetic, microscopy and grey images left out)
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "retina", "hubble_deep_field",
                  "grass", "gravel", "brick")


def photos() -> dict[str, np.ndarray]:
    """name -> H×W×3 uint8 photograph, every one that ships with the installed packages."""
    import matplotlib.cbook
    import skimage.data
    from PIL import Image
    from sklearn.datasets import load_sample_images

    found = {}
    sample = load_sample_images()
    for name, image in zip(sample.filenames, sample.images, strict=True):
        found[f"sklearn:{Path(name).stem}"] = np.asarray(image, dtype=np.uint8)
    for name in SKIMAGE_PHOTOS:
        image = np.asarray(getattr(skimage.data, name)())
        if image.ndim == 3 and image.shape[2] >= 3:
            found[f"skimage:{name}"] = image[..., :3].astype(np.uint8)
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        found["matplotlib:grace_hopper"] = np.asarray(Image.open(f).convert("RGB"))
    return found


def write_crops(folder: Path, n: int, *, size: int = 256, seed: int = 0) -> list[Path]:
    """``n`` random square crops (30–100% of a photo's short side, maybe mirrored), resized
    to ``size``², written as ``folder/crop_<seed>_<i>.png``; the paths."""
    from PIL import Image

    from edgekit.calibration.embedded import random_crop

    folder.mkdir(parents=True, exist_ok=True)
    sources = list(photos().values())
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"crop_{seed}_{i:05d}.png"
        Image.fromarray(random_crop(sources, rng, size)).save(path)
        paths.append(path)
    return paths
