"""Backroom vision: shelf renderer, detector, planogram mapping, safe frame loading.

Try it: `backroom render-dataset --n 8 --seed 1 /tmp/shelves/` then
`backroom detect /tmp/shelves/images/val/*.jpg --json`. See docs/vision.md.
"""

CLASSES = ("product", "gap")
PRODUCT, GAP = 0, 1
