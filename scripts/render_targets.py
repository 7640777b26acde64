"""Render the article's ten emoji from the Noto Color Emoji font into nca/assets/targets/.

    python scripts/render_targets.py            # needs: apt-get install fonts-noto-color-emoji

Pillow draws each emoji with ``embedded_color=True`` at size 109 (the font's bitmap
strike), cropped to its ink. The PNGs are committed, so users never need the font for
the bundled names; this script documents (and can redo) how they were made.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nca.errors import NCAError  # noqa: E402
from nca.targets import ASSETS, EMOJI, find_emoji_font, render_emoji  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--font", default=None, help="path to a colour emoji font (default: Noto Color Emoji)")
    ap.add_argument("--out", type=Path, default=ASSETS)
    a = ap.parse_args()
    try:
        font = a.font or find_emoji_font()
        for name, char in EMOJI.items():
            img = render_emoji(char, font)
            a.out.mkdir(parents=True, exist_ok=True)
            img.save(a.out / f"{name}.png")
            print(f"{name:15s} U+{ord(char):X}  {img.size[0]}x{img.size[1]}  <- {font}")
    except NCAError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
