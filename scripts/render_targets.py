"""Render the article's ten emoji from the Noto Color Emoji font into a folder of PNGs.

    python scripts/render_targets.py --out nca/assets/targets   # needs: apt-get install fonts-noto-color-emoji

Pillow draws each emoji with ``embedded_color=True`` at size 109 (the font's bitmap
strike), cropped to its ink. The PNGs in nca/assets/targets/ are committed, so users never
need the font for the bundled names; this script documents (and can redo) how they were
made. A font without one of the emoji (it would draw its missing-glyph box) is refused.
Each PNG is written atomically; --out is checked for writability before rendering.
"""

import io
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python scripts/render_targets.py` from a clean clone
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nca.cli import Parser, run_cli  # noqa: E402


def parser() -> Parser:
    ap = Parser(description=__doc__, prog="render_targets.py")
    ap.required_args.add_argument("--out", type=Path, metavar="PATH", required=True,
                                  help="folder to write <name>.png into (the bundled ones: nca/assets/targets)")
    ap.add_argument("--font", default=None, metavar="FILE",
                    help="a colour emoji font (default: Noto Color Emoji, or $NCA_EMOJI_FONT)")
    return ap


def main() -> int:
    a = parser().parse_args()
    from nca.checkpoint import atomic_write_bytes, check_writable
    from nca.errors import NCAError
    from nca.targets import EMOJI, FONT_HINT, find_emoji_font, render_emoji

    check_writable(a.out, folder=True)
    font = a.font or find_emoji_font()
    if font is None:
        raise NCAError(f"no colour emoji font found; {FONT_HINT}")
    if not Path(font).is_file():
        raise NCAError(f"font not found: {font}")
    images = {name: render_emoji(char, font) for name, char in EMOJI.items()}  # all or nothing
    for (name, img), char in zip(images.items(), EMOJI.values()):
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        atomic_write_bytes(a.out / f"{name}.png", buf.getvalue())
        print(f"{name:15s} U+{ord(char):X}  {img.size[0]}x{img.size[1]}  <- {font}")
    return 0


if __name__ == "__main__":
    run_cli(main)
