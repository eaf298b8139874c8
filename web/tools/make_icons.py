#!/usr/bin/env python3
"""Draws Confab's app icons as PNG files with the standard library only (zlib, struct).

A white speech bubble with three dots on an indigo gradient, anti-aliased by signed distance
fields. Writes web/app/icons/{icon-192,icon-512,icon-maskable-512,apple-touch-icon}.png.
Run it again after changing the drawing: python3 web/tools/make_icons.py
"""
import math
import os
import struct
import zlib

TOP = (99, 102, 241)  # indigo-500
BOTTOM = (67, 56, 202)  # indigo-700
WHITE = (255, 255, 255)


def rounded_box(px, py, cx, cy, hw, hh, r):
    qx = abs(px - cx) - hw + r
    qy = abs(py - cy) - hh + r
    outside = math.hypot(max(qx, 0.0), max(qy, 0.0))
    return outside + min(max(qx, qy), 0.0) - r


def circle(px, py, cx, cy, r):
    return math.hypot(px - cx, py - cy) - r


def segment_side(px, py, ax, ay, bx, by):
    # Signed distance to the line through a and b (positive on the right).
    dx, dy = bx - ax, by - ay
    return ((px - ax) * dy - (py - ay) * dx) / math.hypot(dx, dy)


def triangle(px, py, a, b, c):
    # Convex polygon, clockwise in screen space: max of the edge half-planes.
    return max(
        segment_side(px, py, *a, *b),
        segment_side(px, py, *b, *c),
        segment_side(px, py, *c, *a),
    )


def coverage(d, aa):
    return min(1.0, max(0.0, 0.5 - d / aa))


def mix(a, b, t):
    return tuple(a[i] + (b[i] - a[i]) * t for i in range(3))


def draw(size, *, full_bleed, scale):
    """RGBA rows. `scale` shrinks the artwork around the centre (maskable icons keep it
    inside the safe zone); `full_bleed` fills the square instead of a rounded tile."""
    aa = 1.0 / size
    rows = []
    for y in range(size):
        row = bytearray([0])  # filter: none
        for x in range(size):
            u = (x + 0.5) / size
            v = (y + 0.5) / size
            bg = mix(TOP, BOTTOM, (u + v) / 2)
            tile = -1.0 if full_bleed else rounded_box(u, v, 0.5, 0.5, 0.5, 0.5, 0.22)
            alpha = coverage(tile, aa)
            # Artwork coordinates.
            s = (u - 0.5) / scale + 0.5
            t = (v - 0.5) / scale + 0.5
            a = aa / scale
            bubble = min(
                rounded_box(s, t, 0.5, 0.47, 0.27, 0.2, 0.11),
                triangle(s, t, (0.30, 0.58), (0.40, 0.64), (0.27, 0.78)),
            )
            colour = mix(bg, WHITE, coverage(bubble, a))
            dots = min(circle(s, t, cx, 0.47, 0.045) for cx in (0.38, 0.5, 0.62))
            colour = mix(colour, mix(TOP, BOTTOM, 0.5), coverage(dots, a))
            row += bytes(round(c) for c in colour) + bytes([round(alpha * 255)])
        rows.append(bytes(row))
    return rows


def png(path, size, rows):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    data = zlib.compress(b"".join(rows), 9)
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    icons = os.path.join(here, "..", "app", "icons")
    for name, size, full_bleed, scale in [
        ("icon-192.png", 192, False, 1.0),
        ("icon-512.png", 512, False, 1.0),
        ("icon-maskable-512.png", 512, True, 0.78),
        ("apple-touch-icon.png", 180, True, 0.9),
    ]:
        png(os.path.join(icons, name), size, draw(size, full_bleed=full_bleed, scale=scale))
        print("wrote", name)


if __name__ == "__main__":
    main()
