"""The interactive explorer of notebook 04: look at IRN's LR and reconstructions, live.

The computations are plain functions (:func:`view_round_trip`, :func:`sample_spread`,
:func:`error_map`) so they are tested without a browser; :class:`Explorer` wires them to
ipywidgets, and :func:`view_figure` draws the same view as a static matplotlib figure (what a
papermill run shows).
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as w
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from irnlib.data.folders import list_images
from irnlib.data.test_pairs import TestPair
from irnlib.imaging.images import ImageFileError, center_crop, load_image, mod_crop, to_batch, to_image
from irnlib.imaging.imresize import imresize
from irnlib.imaging.metrics import rgb_to_y
from irnlib.model.checkpoint import load_checkpoint
from irnlib.model.inference import downscale_with_health
from irnlib.model.network import IRN
from irnlib.protocol import evaluate
from irnlib.protocol.weights import available_weights, choose_weights

__all__ = [
    "View",
    "view_round_trip",
    "sample_spread",
    "error_map",
    "panels",
    "view_figure",
    "decode_upload",
    "default_images",
    "Explorer",
]

UNTRAINED = "untrained IRN (pure Haar)"
# The spread map: how much the reconstruction varies with the latent z, pixel by pixel.
SPREAD_TITLE = "per-pixel std of Y over draws of z"
NOT_DRAWN_GREY = 235  # the spread panel before its button ("draw 8 samples") is pressed


@dataclass
class View:
    """Everything the explorer shows for one image, scale, network, temperature and draw."""

    hr: np.ndarray  # uint8 (H, W, 3), H and W multiples of the scale
    irn_lr: np.ndarray  # uint8 (H/s, W/s, 3): IRN's downscaled image (8-bit)
    bicubic_lr: np.ndarray  # uint8 (H/s, W/s, 3): MATLAB bicubic
    irn_sr: np.ndarray  # uint8 (H, W, 3): IRN's reconstruction from irn_lr and a z draw
    bicubic_sr: np.ndarray  # uint8 (H, W, 3): bicubic up of bicubic_lr
    metrics: dict  # Y-PSNR/SSIM of both reconstructions and of IRN's LR vs bicubic LR


def view_round_trip(
    net: IRN, hr: np.ndarray, temperature: float = 1.0, seed: int = 0, lr: np.ndarray | None = None
) -> View:
    """Downscale ``hr`` with IRN, upscale with ``z ~ N(0, temperature²)`` (draw ``seed``), and compare.

    The paper's protocol (:func:`irnlib.protocol.evaluate.round_trip`) on the whole image, next to
    Bicubic & Bicubic.

    Parameters
    ----------
    net : IRN
    hr : ndarray of uint8, shape (H, W, 3)
        Mod-cropped to a multiple of ``net.scale`` here.
    temperature : float
        Standard deviation of the latent at upscaling (1 in the paper, 0 = the mode).
    seed : int
        Seed of the latent draw.
    lr : ndarray of uint8, optional
        IRN's LR if already computed (the explorer caches it while only ``z`` changes).
    """
    s = net.scale
    hr = mod_crop(hr, s)
    pair = TestPair("view", hr, imresize(hr, 1 / s))
    trip = evaluate.round_trip(
        net, pair, [torch.Generator().manual_seed(int(seed))], temperature=temperature, tile=None, lr=lr
    )
    bic_sr = evaluate.bicubic_rescale(pair, s)
    irn, bicubic = trip.sr_metrics[0], evaluate.sr_metrics(bic_sr, hr, s)
    metrics = {  # display labels
        "IRN PSNR": irn["psnr_y"],
        "IRN SSIM": irn["ssim_y"],
        "Bicubic PSNR": bicubic["psnr_y"],
        "Bicubic SSIM": bicubic["ssim_y"],
        "IRN LR vs bicubic LR PSNR": trip.lr_metrics["lr_psnr_y"],
    }
    return View(hr, trip.lr, pair.lr, trip.sr[0], bic_sr, metrics)


@torch.inference_mode()
def sample_spread(net: IRN, lr: np.ndarray, temperature: float = 1.0, draws: int = 8, seed: int = 0) -> np.ndarray:
    """Per-pixel standard deviation (in Y, 0..255 units) of ``draws`` reconstructions from ``lr``.

    Shows where the latent ``z`` matters: the detail IRN cannot pin down from the LR alone.
    """
    param = next(net.parameters())
    batch = to_batch(lr, param.device, param.dtype)
    gen = torch.Generator().manual_seed(int(seed))
    ys = [rgb_to_y(to_image(net.upscale(batch, temperature, gen))) for _ in range(draws)]
    return np.std(np.stack(ys), axis=0)


def error_map(reconstruction: np.ndarray, hr: np.ndarray) -> np.ndarray:
    """Absolute Y-channel error, float64 in 0..255 units, shape (H, W)."""
    return np.abs(rgb_to_y(reconstruction) - rgb_to_y(hr))


def _crop(img: np.ndarray, box: tuple[int, int, int] | None, factor: int = 1) -> np.ndarray:
    """The square ``box = (top, left, size)`` (HR pixels) of an image ``factor`` times smaller."""
    if box is None:
        return img
    top, left, size = (v // factor for v in box)
    return img[top : top + size, left : left + size]


def panels(view: View, zoom: tuple[int, int, int] | None = None, spread: np.ndarray | None = None) -> dict:
    """The explorer's panels, ``key -> (image, title)``; error and spread maps are float (H, W).

    ``zoom = (top, left, size)`` in HR pixels crops every panel to that square.
    """
    s = view.hr.shape[0] // view.irn_lr.shape[0]
    out = {
        "hr": (_crop(view.hr, zoom), "HR"),
        "irn_lr": (_crop(view.irn_lr, zoom, s), "IRN LR"),
        "bic_lr": (_crop(view.bicubic_lr, zoom, s), "bicubic LR"),
        "irn_sr": (_crop(view.irn_sr, zoom), f"IRN reconstruction {view.metrics['IRN PSNR']:.2f} dB"),
        "bic_sr": (_crop(view.bicubic_sr, zoom), f"bicubic reconstruction {view.metrics['Bicubic PSNR']:.2f} dB"),
        "irn_err": (_crop(error_map(view.irn_sr, view.hr), zoom), "|error| IRN (Y)"),
        "bic_err": (_crop(error_map(view.bicubic_sr, view.hr), zoom), "|error| bicubic (Y)"),
    }
    if spread is not None:
        out["spread"] = (_crop(spread, zoom), SPREAD_TITLE)
    return out


def _error_scale(maps: dict) -> float:
    """One colour scale for both error maps, so that they compare at a glance."""
    return max(max(float(np.percentile(maps[k][0], 99.5)) for k in ("irn_err", "bic_err")), 1.0)


def view_figure(
    view: View, zoom: tuple[int, int, int] | None = None, spread: np.ndarray | None = None, title: str = ""
):
    """The view as a static matplotlib figure (2 × 4 panels), e.g. for a papermill run."""

    shown = panels(view, zoom, spread)
    vmax = _error_scale(shown)
    fig, axes = plt.subplots(2, 4, figsize=(12.8, 6.6))
    for ax, (key, (img, title)) in zip(axes.flat, shown.items()):
        if img.ndim == 2:
            ax.imshow(img, cmap="magma", vmin=0, vmax=vmax if key.endswith("err") else None)
        else:
            ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def _png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def decode_upload(name: str, content: bytes) -> np.ndarray:
    """Decode an uploaded file with the kit's one loader; errors name the file."""
    suffix = Path(name).suffix or ".img"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(bytes(content))
        try:
            return load_image(path)
        except ImageFileError as err:
            raise ImageFileError(f"{name}: {str(err).split(': ', 1)[-1]}") from None


class Explorer:
    """ipywidgets explorer: image, scale, checkpoint, temperature, draw, zoom; live metrics.

    Parameters
    ----------
    images : dict of str -> ndarray of uint8
        Choices for the image dropdown (name -> RGB image).
    max_side : int
        Images are centre-cropped to at most this size so that each update stays interactive
        on a CPU.
    device : str
    results : path, optional
        Results folder searched for the kit's trained runs.
    """

    def __init__(self, images: dict[str, np.ndarray], max_side: int = 256, device: str = "cpu", results=None):
        if not images:
            raise ValueError("Explorer needs at least one image")
        self.images = dict(images)
        self.max_side, self.device, self.results = max_side, device, results
        self._nets: dict[tuple[int, str], IRN] = {}
        self._lr_cache: dict[tuple, tuple[np.ndarray, object]] = {}  # -> (IRN's LR, its DownscaleHealth)
        self._warning_shown = False  # the message area holds a RescaleWarning text
        self.view: View | None = None
        self.spread: np.ndarray | None = None

        self.image = w.Dropdown(options=list(self.images), description="image")
        self.scale = w.Dropdown(options=[2, 4, 8], value=4, description="scale")
        self.checkpoint = w.Dropdown(description="network")
        self.temperature = w.FloatSlider(value=1.0, min=0.0, max=1.5, step=0.1, description="z temperature")
        self.seed = w.IntText(value=0, description="z draw")
        self.zoom_x = w.FloatSlider(value=0.5, min=0, max=1, step=0.05, description="zoom x")
        self.zoom_y = w.FloatSlider(value=0.5, min=0, max=1, step=0.05, description="zoom y")
        self.zoom = w.IntSlider(value=1, min=1, max=8, description="zoom ×")
        self.samples = w.Button(description="draw 8 samples: show std", icon="random")
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="your image")
        for control in (self.temperature, self.seed, self.zoom_x, self.zoom_y, self.zoom):
            control.style.description_width = "initial"  # show the whole label
        self.samples.layout.width = "230px"
        self.message = w.HTML()
        self.metrics = w.HTML()
        self.panels = {
            k: w.Image(format="png")
            for k in ("hr", "irn_lr", "bic_lr", "irn_sr", "bic_sr", "irn_err", "bic_err", "spread")
        }
        for key, widget in self.panels.items():
            widget.layout.width = "230px"
            widget.add_class(f"irn-panel-{key}")
        self.metrics.add_class("irn-metrics")
        self.temperature.add_class("irn-temperature")
        self.message.add_class("irn-message")

        self._refresh_checkpoints()
        self.scale.observe(lambda _: (self._refresh_checkpoints(), self.update()), names="value")
        for control in (self.image, self.checkpoint, self.temperature, self.seed, self.zoom_x, self.zoom_y, self.zoom):
            control.observe(lambda _: self.update(), names="value")
        self.samples.on_click(lambda _: self.draw_samples())
        self.upload.observe(lambda change: self.add_upload(change["new"]), names="value")

    # -- state -------------------------------------------------------------------------
    def _refresh_checkpoints(self) -> None:
        found = available_weights(self.scale.value, self.results)
        self.checkpoint.options = [UNTRAINED] + list(found)
        # The official model, else the kit's reference model, else the last training run.
        default = choose_weights("rescale", self.scale.value)
        named = [name for name, path in found.items() if path == default]
        self.checkpoint.value = named[0] if named else self.checkpoint.options[-1]

    def network(self) -> IRN:
        key = (self.scale.value, self.checkpoint.value)
        if key not in self._nets:
            if self.checkpoint.value == UNTRAINED:
                net = IRN(self.scale.value).eval()
            else:
                net = load_checkpoint(available_weights(self.scale.value, self.results)[self.checkpoint.value])
            self._nets[key] = net.to(self.device)
        return self._nets[key]

    def zoom_box(self) -> tuple[int, int, int] | None:
        """``(top, left, size)`` in HR pixels, a multiple of the scale; None at zoom 1."""
        if self.view is None or self.zoom.value == 1:
            return None
        h, w = self.view.hr.shape[:2]
        s = self.scale.value
        size = max(s, (min(h, w) // self.zoom.value) // s * s)
        top = int(self.zoom_y.value * (h - size)) // s * s
        left = int(self.zoom_x.value * (w - size)) // s * s
        return top, left, size

    # -- callbacks ---------------------------------------------------------------------
    def update(self) -> View:
        """Recompute the view for the current controls and refresh every panel."""
        hr = center_crop(self.images[self.image.value], self.max_side, self.scale.value)
        key = (self.image.value, self.scale.value, self.checkpoint.value)
        net = self.network()
        if key not in self._lr_cache:  # the protocol's LR (untiled), and how healthy the same forward pass was
            with torch.inference_mode():
                lr, health = downscale_with_health(net, to_batch(hr).to(next(net.parameters()).device), tile=None)
            self._lr_cache[key] = (np.ascontiguousarray(to_image(lr)), health)
        lr, health = self._lr_cache[key]
        self.view = view_round_trip(net, hr, self.temperature.value, self.seed.value, lr=lr)
        self._show_health(health)
        self.spread = None
        self._show()
        return self.view

    def draw_samples(self, draws: int = 8) -> np.ndarray:
        """Per-pixel std of ``draws`` reconstructions at the current temperature."""
        if self.view is None:
            self.update()
        self.spread = sample_spread(self.network(), self.view.irn_lr, self.temperature.value, draws, self.seed.value)
        self._show()
        return self.spread

    def add_upload(self, value) -> None:
        """Add an uploaded image (FileUpload value) to the image list and select it."""
        for item in value:
            name, content = item["name"], item["content"]
            try:
                img = decode_upload(name, content)
            except ImageFileError as err:
                self.message.value = (
                    f"<b style='color:#b00'>Cannot use {name}:</b> {err}. Upload a PNG, JPEG, BMP or TIFF image."
                )
                continue
            if min(img.shape[:2]) < 2 * self.scale.value:
                self.message.value = (
                    f"<b style='color:#b00'>Cannot use {name}:</b> {img.shape[1]}×{img.shape[0]} is too small."
                )
                continue
            label = f"upload: {name}"
            self.images[label] = img
            self.image.options = list(self.images)
            self.message.value = f"Loaded {name} ({img.shape[1]}×{img.shape[0]})."
            self._warning_shown = False
            self.image.value = label

    def _show_health(self, health) -> None:
        """Show a RescaleWarning's text in the message area, or clear an earlier one."""
        if not health.healthy:
            self.message.value = f"<b style='color:#b60'>Warning:</b> {health.message()}"
            self._warning_shown = True
        elif self._warning_shown:
            self.message.value = ""
            self._warning_shown = False

    # -- display -----------------------------------------------------------------------
    def _show(self) -> None:
        shown = panels(self.view, self.zoom_box(), self.spread)
        vmax = _error_scale(shown)
        if "spread" not in shown:  # nothing drawn yet: a blank panel of the HR's size, not a broken image
            self.panels["spread"].value = _png_bytes(np.full_like(shown["hr"][0], NOT_DRAWN_GREY))
        for key, (img, _) in shown.items():
            if img.ndim == 2:  # a float map: colour it, errors on the shared scale
                top = vmax if key.endswith("err") else max(float(img.max()), 1e-6)
                img = (matplotlib.colormaps["magma"](np.clip(img / top, 0, 1))[..., :3] * 255).astype(np.uint8)
            self.panels[key].value = _png_bytes(img)
        m, s = self.view.metrics, self.scale.value
        self.metrics.value = (
            f"<b>IRN</b>: <span class='irn-psnr'>{m['IRN PSNR']:.2f}</span> dB / {m['IRN SSIM']:.4f} &nbsp; "
            f"<b>Bicubic</b>: {m['Bicubic PSNR']:.2f} dB / {m['Bicubic SSIM']:.4f} &nbsp; "
            f"IRN LR vs bicubic LR: {m['IRN LR vs bicubic LR PSNR']:.2f} dB &nbsp; (Y channel, border {s})"
        )

    def describe(self) -> str:
        """One line naming what the current view shows (for figure titles)."""
        return (
            f"{self.image.value} · ×{self.scale.value} · {self.checkpoint.value} · "
            f"z temperature {self.temperature.value:g}, draw {self.seed.value}"
        )

    def widget(self):
        """The whole explorer as one ipywidgets box (display it in a notebook)."""

        def tile(key, title):
            return w.VBox([w.HTML(f"<small>{title}</small>"), self.panels[key]])

        controls = w.VBox(
            [
                w.HBox([self.image, self.scale, self.checkpoint]),
                w.HBox([self.temperature, self.seed, self.samples]),
                w.HBox([self.zoom, self.zoom_x, self.zoom_y]),
                w.HBox([self.upload, self.message]),
            ]
        )
        grid = w.VBox(
            [
                w.HBox(
                    [
                        tile("hr", "HR"),
                        tile("irn_lr", "IRN LR"),
                        tile("bic_lr", "bicubic LR"),
                        tile("spread", SPREAD_TITLE),
                    ]
                ),
                w.HBox(
                    [
                        tile("irn_sr", "IRN reconstruction"),
                        tile("bic_sr", "bicubic reconstruction"),
                        tile("irn_err", "|error| IRN"),
                        tile("bic_err", "|error| bicubic"),
                    ]
                ),
            ]
        )
        return w.VBox([controls, self.metrics, grid])


def default_images(root=None, max_images: int = 12) -> dict[str, np.ndarray]:
    """Images for the explorer: the embedded test photographs, then Set5/Set14 if present."""
    images = {f"embedded: {p.stem}": load_image(p) for p in list_images("embedded-test")}
    for name in ("Set5", "Set14"):
        try:
            paths = list_images(name, root)
        except FileNotFoundError:
            continue
        for p in paths[: max(0, max_images - len(images))]:
            images[f"{name}: {p.stem}"] = load_image(p)
    return images
