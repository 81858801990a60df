"""The ceiling of `huelab bench data`: decoding alone. Every JPEG file of the folder read and
decoded to RGB once by libjpeg-turbo through its own TurboJPEG API (simplejpeg's `decode_jpeg`
calls `tjDecompress2` with its accurate DCT and smooth upsampling, libjpeg-turbo's defaults, as
Pillow decodes), in `workers` processes started before the clock, files dealt round-robin.
Prints one JSON line with images per second. Run by huelab; not meant to be run by hand."""
import argparse
import json
import multiprocessing
import os
import time

import simplejpeg

p = argparse.ArgumentParser()
p.add_argument("--folder", required=True)
p.add_argument("--workers", type=int, default=2)
a = p.parse_args()

paths = sorted(
    os.path.join(root, name)
    for root, _, names in os.walk(a.folder)
    for name in names
    if name.lower().endswith((".jpg", ".jpeg"))
)


def decode(share):
    for path in share:
        with open(path, "rb") as f:
            simplejpeg.decode_jpeg(f.read(), colorspace="RGB", fastdct=False, fastupsample=False)
    return len(share)


def ready(_):
    return os.getpid()


if __name__ == "__main__":
    shares = [paths[w :: a.workers] for w in range(a.workers)]
    with multiprocessing.get_context("fork").Pool(a.workers) as pool:
        pool.map(ready, range(a.workers), chunksize=1)
        start = time.perf_counter()
        images = sum(pool.map(decode, shares, chunksize=1))
        seconds = time.perf_counter() - start
    print(json.dumps({"images": images, "seconds": seconds, "images_per_second": images / seconds, "simplejpeg": simplejpeg.__version__}))
