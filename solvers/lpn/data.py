"""Training and evaluation data that ship with installed packages (nothing is downloaded).

* Grayscale photographs bundled with scikit-image, split *by image* into a fixed training set
  (:data:`TRAIN_IMAGES`) and a held-out set (:data:`HELDOUT_IMAGES`).
* More photographs that ship with other installed packages (:data:`MORE_PHOTOS`: scikit-image's
  clock and stereo motorcycle, scikit-learn's china and flower, matplotlib's Grace Hopper), used
  only by the ``"photos"`` training set; none of them is held out.
* ``lfw_subset``: 200 face crops of 25 x 25 bundled with scikit-image; faces 0-159 train,
  160-199 are held out.
* ``digits``: scikit-learn's 1797 handwritten 8 x 8 digits made MNIST-like (28 x 28, sharp
  strokes; :func:`digits`), a fixed random split of 1500 training and 297 held-out digits, for the
  paper's prior experiment with its fixed-size network.
* Random-ellipse phantoms for CT training (:func:`ellipse_phantom`, optionally with a bright
  skull-like outer shell) and the Shepp-Logan
  phantom for evaluation (:func:`shepp_logan`).

Images are float64 numpy arrays in ``[0, 1]``.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

__all__ = ["TRAIN_IMAGES", "HELDOUT_IMAGES", "MORE_PHOTOS", "gray_image", "training_images", "heldout_images", "faces",
           "digits", "sample_patches", "ellipse_phantom", "shepp_logan", "PatchSampler"]

TRAIN_IMAGES = ("brick", "grass", "gravel", "chelsea", "coins", "moon", "page", "rocket",
                "text", "retina", "cell", "immunohistochemistry")
HELDOUT_IMAGES = ("camera", "astronaut", "coffee")
MORE_PHOTOS = ("clock", "motorcycle", "china", "flower", "grace_hopper")
_FACES_TRAIN = slice(0, 160)
_FACES_HELDOUT = slice(160, 200)
DIGIT_SIZE = 28
_DIGIT_CONTRAST = 12.0
_DIGITS_TRAIN = 1500


def _rgb2gray(image: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2gray, rgba2rgb
    if image.ndim == 3 and image.shape[-1] == 4:
        image = rgba2rgb(image)
    return rgb2gray(image) if image.ndim == 3 else image


@lru_cache(maxsize=None)
def gray_image(name: str, scale: float = 0.5) -> np.ndarray:
    """A scikit-image bundled image in grayscale, float64 in ``[0, 1]``, resized by ``scale``.

    Parameters
    ----------
    name : str
        A function name of ``skimage.data`` (``"camera"``, ``"astronaut"``, ...).
    scale : float
        Resize factor (anti-aliased); the default halves 512 x 512 photographs to 256 x 256.

    Returns
    -------
    (H, W) ndarray
    """
    from skimage.transform import rescale
    from skimage.util import img_as_float
    image = _rgb2gray(img_as_float(_load_photo(name)))
    if scale != 1.0:
        image = rescale(image, scale, anti_aliasing=True)
    image = np.asarray(image, dtype=np.float64)
    lo, hi = float(image.min()), float(image.max())
    return (image - lo) / max(hi - lo, 1e-12)


def _load_photo(name: str) -> np.ndarray:
    """The raw bundled photograph ``name`` (uint8 or float, gray or RGB)."""
    import skimage.data
    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image
        return load_sample_image(f"{name}.jpg")
    if name == "grace_hopper":
        import matplotlib.cbook
        import matplotlib.pyplot as plt
        return plt.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg"))
    loader = getattr(skimage.data, name, None)
    if loader is None:
        raise ValueError(f"no bundled image {name!r}; use a skimage.data function name or one of "
                         f"{TRAIN_IMAGES + HELDOUT_IMAGES + MORE_PHOTOS}")
    return loader()


def training_images(scale: float = 0.5) -> list[np.ndarray]:
    """The training photographs (:data:`TRAIN_IMAGES`)."""
    return [gray_image(name, scale) for name in TRAIN_IMAGES]


def heldout_images(size: int = 256) -> dict[str, np.ndarray]:
    """Held-out photographs (:data:`HELDOUT_IMAGES`), centre-cropped to ``size x size`` after halving."""
    out = {}
    for name in HELDOUT_IMAGES:
        image = gray_image(name, 0.5)
        top, left = max((image.shape[0] - size) // 2, 0), max((image.shape[1] - size) // 2, 0)
        out[name] = image[top:top + size, left:left + size]
    return out


@lru_cache(maxsize=None)
def _lfw() -> np.ndarray:
    import skimage.data
    return np.asarray(skimage.data.lfw_subset(), dtype=np.float64)


def faces(split: str = "train") -> np.ndarray:
    """``lfw_subset`` faces, ``(N, 25, 25)`` in ``[0, 1]``: ``"train"`` (160) or ``"heldout"`` (40)."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    return _lfw()[_FACES_TRAIN if split == "train" else _FACES_HELDOUT]


@lru_cache(maxsize=None)
def _digits() -> np.ndarray:
    from scipy.special import expit
    from skimage.transform import resize
    from sklearn.datasets import load_digits
    small = np.pad(load_digits().images / 16.0, ((0, 0), (1, 1), (1, 1)))  # (1797, 10, 10), a blank border
    big = np.stack([resize(im, (DIGIT_SIZE, DIGIT_SIZE), order=3) for im in small])
    sharp = expit(_DIGIT_CONTRAST * (big - 0.5))  # the cubic upsampling blurs the strokes; sharpen them
    return (sharp - sharp.min()) / (sharp.max() - sharp.min())


def digits(split: str = "train") -> np.ndarray:
    """scikit-learn's handwritten digits made MNIST-like, ``(N, 28, 28)`` in ``[0, 1]``.

    Each 8 x 8 digit gets a one-pixel blank border, is upsampled to 28 x 28 (cubic) and sharpened by
    a logistic contrast curve ``1 / (1 + exp(-12 (x - 0.5)))``: white strokes with soft
    anti-aliased edges on black, as in MNIST. ``"train"``: 1500 digits, ``"heldout"``: the other 297
    (a fixed random split).
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    images = _digits()
    order = np.random.default_rng(0).permutation(len(images))
    return images[order[:_DIGITS_TRAIN] if split == "train" else order[_DIGITS_TRAIN:]]


def ellipse_phantom(size: int, generator: np.random.Generator, n_ellipses: int | None = None,
                    shell_probability: float = 0.0) -> np.ndarray:
    """A random phantom of overlapping ellipses (additive intensities, clipped to ``[0, 1]``).

    Parameters
    ----------
    size : int
        Image side ``N``.
    generator : numpy Generator
    n_ellipses : int, optional
        Default: random in ``[4, 12]``.
    shell_probability : float
        Probability of a bright outer shell (``0.7-1.0``, 1-4 pixels thick at ``N = 128``) around
        a darker body (``0.1-0.4``), as in head phantoms with a skull; otherwise (and for the
        default 0) the body is a plain ellipse of intensity ``0.2-0.6``.

    Returns
    -------
    (N, N) ndarray
    """
    n = int(generator.integers(4, 13)) if n_ellipses is None else n_ellipses
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    image = np.zeros((size, size))
    outer = generator.uniform(0.7, 0.95, size=2)
    body = (xx / outer[0]) ** 2 + (yy / outer[1]) ** 2 <= 1
    if shell_probability > 0 and generator.uniform() < shell_probability:
        thickness = generator.uniform(0.02, 0.07)
        inner = (xx / (outer[0] - thickness)) ** 2 + (yy / (outer[1] - thickness)) ** 2 <= 1
        image[body] = generator.uniform(0.7, 1.0)
        image[inner] = generator.uniform(0.1, 0.4)
    else:
        image[body] = generator.uniform(0.2, 0.6)
    for _ in range(n):
        cx, cy = generator.uniform(-0.6, 0.6, size=2)
        a, b = generator.uniform(0.03, 0.35, size=2)
        theta = generator.uniform(0, np.pi)
        value = generator.uniform(-0.3, 0.5)
        u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
        v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
        image[(u / a) ** 2 + (v / b) ** 2 <= 1] += value
    return np.clip(image, 0.0, 1.0)


def shepp_logan(size: int = 128) -> np.ndarray:
    """The Shepp-Logan phantom bundled with scikit-image, resized to ``size x size``, in ``[0, 1]``."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize
    image = shepp_logan_phantom()
    if image.shape[0] != size:
        image = resize(image, (size, size), anti_aliasing=True)
    return np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)


class PatchSampler:
    """Random clean patches from a fixed list of images (random crop and flips).

    Parameters
    ----------
    images : list of (H, W) ndarray
    patch : int
        Patch side; images smaller than ``patch`` are reflect-padded.
    weights : sequence of float, optional
        Sampling probability of each image (default: proportional to its area).
    augment : bool
        Random flips and transposes (default); off for data that has an orientation (digits).
    """

    def __init__(self, images: list[np.ndarray], patch: int, weights=None, augment: bool = True):
        self.patch, self.augment = patch, augment
        self.images = [np.pad(im, [(0, max(patch - s, 0)) for s in im.shape], mode="reflect") for im in images]
        w = np.array([im.size for im in images] if weights is None else weights, dtype=np.float64)
        self.weights = torch.as_tensor(w / w.sum())

    def __call__(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """``count`` patches ``(count, 1, patch, patch)`` float64, drawn with ``generator``."""
        which = torch.multinomial(self.weights, count, replacement=True, generator=generator)
        out = np.empty((count, 1, self.patch, self.patch))
        for i, k in enumerate(which.tolist()):
            im = self.images[k]
            r = int(torch.randint(0, im.shape[0] - self.patch + 1, (1,), generator=generator))
            c = int(torch.randint(0, im.shape[1] - self.patch + 1, (1,), generator=generator))
            p = im[r:r + self.patch, c:c + self.patch]
            flips = torch.randint(0, 2, (3,), generator=generator).tolist() if self.augment else [0, 0, 0]
            if flips[0]:
                p = p[::-1]
            if flips[1]:
                p = p[:, ::-1]
            if flips[2]:
                p = p.T
            out[i, 0] = p
        return torch.from_numpy(out)


def sample_patches(kind: str, patch: int) -> PatchSampler:
    """The training sampler of a data set: ``"images"`` (photographs + faces), ``"photos"`` (the same
    plus :data:`MORE_PHOTOS`), ``"ellipses"`` or
    ``"ellipses-shell"`` (200 random phantoms of 128 x 128, half of them with a bright outer shell), or
    ``"digits"`` (whole 28 x 28 training digits, not flipped; ``patch`` must be 28)."""
    if kind in ("images", "photos"):
        photos = training_images() + ([gray_image(name) for name in MORE_PHOTOS] if kind == "photos" else [])
        # every photograph equally likely; the 160 faces together count as two photographs
        n_faces = len(faces("train"))
        weights = [1.0] * len(photos) + [2.0 / n_faces] * n_faces
        return PatchSampler(photos + list(faces("train")), patch, weights)
    if kind in ("ellipses", "ellipses-shell"):
        rng = np.random.default_rng(12345)
        shell = 0.5 if kind == "ellipses-shell" else 0.0
        return PatchSampler([ellipse_phantom(128, rng, shell_probability=shell) for _ in range(200)], patch)
    if kind == "digits":
        if patch != DIGIT_SIZE:
            raise ValueError(f"digits are whole {DIGIT_SIZE} x {DIGIT_SIZE} images; got patch={patch}, use "
                             f"--patch {DIGIT_SIZE}")
        return PatchSampler(list(digits("train")), patch, augment=False)
    raise ValueError(f"unknown training data {kind!r}; use 'images', 'photos', 'ellipses', 'ellipses-shell' or "
                     "'digits'")
