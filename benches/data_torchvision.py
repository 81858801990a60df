"""The reference side of `huelab bench data`: torchvision's ImageFolder and DataLoader over the
same folder of JPEG photos, with the transforms huelab applies (RandomResizedCrop(224),
RandomHorizontalFlip, ToTensor, Normalize with ImageNet statistics), `num_workers` processes,
batches of `batch`. Iterates one epoch and prints one JSON line: images per second and the peak
resident memory of the main process and its workers together. Run by huelab; not meant to be
run by hand."""
import argparse
import json
import os
import threading
import time

import torch
import torchvision
from torchvision import transforms

p = argparse.ArgumentParser()
p.add_argument("--folder", required=True)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--workers", type=int, default=2)
p.add_argument("--size", type=int, default=224)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


peak = [0]
done = threading.Event()


def sample():
    me = os.getpid()
    while not done.is_set():
        total = rss_bytes(me) + sum(rss_bytes(c) for c in children(me))
        peak[0] = max(peak[0], total)
        time.sleep(0.05)


transform = transforms.Compose([
    transforms.RandomResizedCrop(a.size),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
])
data = torchvision.datasets.ImageFolder(a.folder, transform=transform)
loader = torch.utils.data.DataLoader(data, batch_size=a.batch, shuffle=True, num_workers=a.workers, persistent_workers=False)
baseline = rss_bytes(os.getpid())
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
start = time.perf_counter()
images = 0
for x, y in loader:
    images += x.shape[0]
seconds = time.perf_counter() - start
done.set()
sampler.join()
print(json.dumps({"images": images, "seconds": seconds, "images_per_second": images / seconds, "peak_rss_bytes": peak[0], "baseline_rss_bytes": baseline}))
