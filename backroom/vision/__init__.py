"""Backroom vision: shelf renderer, detector, planogram mapping, safe frame loading.

Try it: `backroom render-dataset --n 8 --seed 1 /tmp/shelves/` then
`backroom detect /tmp/shelves/images/val/*.jpg --json`. See docs/vision.md.
"""

CLASSES = ("product", "gap")
PRODUCT, GAP = 0, 1


def visible_facings(shelf_qty: int, facings: int, depth: int) -> int:
    """Facings a camera sees for `shelf_qty` units: each facing is `depth` units deep and shows
    while it holds at least one, so ceil(qty / depth) capped at the planogram's facings."""
    if shelf_qty <= 0:
        return 0
    return min(facings, -(-shelf_qty // max(1, depth)))
