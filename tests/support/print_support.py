"""The PDFs of the pages' print sheets (the cadastral map page's and the portal's): the first
page rendered by pdftoppm, its size (pdfinfo) and its text (pdftotext), from poppler-utils."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

from PIL import Image

MM_PER_INCH = 25.4


def poppler(tool: str = "pdftoppm") -> str:
    path = shutil.which(tool)
    assert path, f"{tool} is missing: apt-get install -y poppler-utils (APT_PACKAGES)"
    return path


def first_page(pdf: bytes, pdftoppm: str, prefix: Path, dpi: int = 50) -> Image.Image:
    """The PDF's first page rendered at `dpi` (the PDF is kept beside it as `prefix`.pdf)."""
    (prefix.parent / f"{prefix.name}.pdf").write_bytes(pdf)
    subprocess.run([pdftoppm, "-r", str(dpi), "-png", "-f", "1", "-l", "1",
                    str(prefix.parent / f"{prefix.name}.pdf"), str(prefix)], check=True)
    png = next(prefix.parent.glob(f"{prefix.name}*.png"))
    return Image.open(io.BytesIO(png.read_bytes())).convert("RGB")


def map_area(pdf: bytes, pdftoppm: str, prefix: Path) -> Image.Image:
    """The map frame's area of the PDF's first page, rendered at 50 dpi (A4: 414 x 585 px;
    the frame is 186 x 130 mm below the title, inside 12 mm margins)."""
    img = first_page(pdf, pdftoppm, prefix)
    w, h = img.size
    return img.crop((int(w * 0.1), int(h * 0.12), int(w * 0.9), int(h * 0.45)))


def frame_area(img: Image.Image, frame_mm: tuple[float, float], dpi: int = 50,
               margin_mm: float = 12, title_mm: float = 12) -> Image.Image:
    """The inner part of a sheet's map frame (`frame_mm` wide and high below a title of about
    `title_mm`, inside the page's margins) on a page rendered at `dpi`."""
    px = dpi / MM_PER_INCH
    x0, y0 = margin_mm + 8, margin_mm + title_mm + 4
    x1, y1 = margin_mm + frame_mm[0] - 8, margin_mm + frame_mm[1] - 4
    return img.crop((int(x0 * px), int(y0 * px), int(x1 * px), int(y1 * px)))


def page_size_pt(pdf_path: Path) -> tuple[float, float]:
    """The first page's width and height in points (pdfinfo)."""
    out = subprocess.run([poppler("pdfinfo"), str(pdf_path)], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", out)
    assert m, out
    return float(m.group(1)), float(m.group(2))


def pdf_text(pdf_path: Path) -> str:
    return subprocess.run([poppler("pdftotext"), str(pdf_path), "-"], capture_output=True,
                          text=True, check=True).stdout
