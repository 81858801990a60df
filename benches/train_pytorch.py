"""PyTorch eager twin of huelab's training step, for `huelab bench train`.

The models mirror huelab's exactly (src/models/small_cnn.rs, src/models/resnet.rs with the
small stem, src/nn/heads.rs): same layers, shapes and heads; the loss is one-hot cross-entropy
plus the hue loss with the paper's defaults; Adam with PyTorch's defaults. With --precision bf16 the
forward pass runs under torch.autocast(dtype=bfloat16) and the loss in float32. One step is
forward + backward + optimiser step on a fixed batch, reading the loss value as a training loop
that logs it does. Prints one JSON line: {"images_per_second": ..., "steps": ..., "seconds": ...}.
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvBlock(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class SmallCnn(nn.Module):
    def __init__(self, in_channels, size):
        super().__init__()
        self.blocks = nn.ModuleList([ConvBlock(in_channels, 32), ConvBlock(32, 64), ConvBlock(64, 128)])
        self.pool_after = [size >= 16, True, False]
        self.out_channels = 128

    def forward(self, x):
        for block, pool in zip(self.blocks, self.pool_after):
            x = block(x)
            if pool:
                x = F.max_pool2d(x, 2)
        return x


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + y)


class ResNet18SmallStem(nn.Module):
    def __init__(self, in_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        blocks, c_in = [], 64
        for i, width in enumerate([64, 128, 256, 512]):
            for b in range(2):
                blocks.append(BasicBlock(c_in, width, 2 if i > 0 and b == 0 else 1))
                c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = 512

    def forward(self, x):
        return self.blocks(F.relu(self.bn1(self.conv1(x))))


class HueNet(nn.Module):
    def __init__(self, backbone, num_classes):
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(backbone.out_channels, num_classes)
        self.hue = nn.Linear(backbone.out_channels, 2)

    def forward(self, x):
        pooled = F.adaptive_avg_pool2d(self.backbone(x), 1).flatten(1)
        return self.classifier(pooled), self.hue(pooled)


def hue_loss(pred_xy, targets, points, scale):
    distances = torch.linalg.vector_norm(pred_xy[:, None, :] - points[None, :, :], dim=-1)
    return F.cross_entropy(-scale * distances, targets)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=["small_cnn", "resnet18"], required=True)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    # torch.channels_last for the model's weights and the input (NHWC strides), PyTorch's
    # other memory format for convolutions.
    parser.add_argument("--memory-format", choices=["contiguous", "channels_last"], default="contiguous")
    # Run the timed steps under torch.profiler and also report the time per step spent inside
    # the convolutions (forward and backward, oneDNN's kernels, which huelab runs too): what
    # no framework around them can make faster.
    parser.add_argument("--profile-convolutions", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    backbone = SmallCnn(args.channels, args.size) if args.model == "small_cnn" else ResNet18SmallStem(args.channels)
    model = HueNet(backbone, args.classes).to(device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    angles = torch.arange(args.classes, dtype=torch.float32) * (2 * math.pi / args.classes)
    points = torch.stack([angles.cos(), angles.sin()], dim=1).to(device)
    x = torch.rand(args.batch, args.channels, args.size, args.size).to(device)
    if args.memory_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(args.classes, (args.batch,)).to(device)

    def forward():
        if args.precision == "fp32":
            return model(x)
        # bf16 autocast of the forward pass only; the loss sees float32 outputs, as huelab's.
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits, pred_xy = model(x)
        return logits.float(), pred_xy.float()

    def step():
        logits, pred_xy = forward()
        loss = F.cross_entropy(logits, y) + hue_loss(pred_xy, y, points, 1.0 / (2 * args.classes))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if args.profile_convolutions else None
    if profiler:
        profiler.start()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()  # loss.item() every step, as a loop that logs its loss does
    seconds = time.perf_counter() - start
    result = {"images_per_second": args.steps * args.batch / seconds, "steps": args.steps, "seconds": seconds}
    if profiler:
        profiler.stop()
        # Each convolution is one aten::convolution (under conv2d and autocast's casts, above
        # the oneDNN call) and one aten::convolution_backward; their inclusive times do not nest.
        inside = sum(e.cpu_time_total for e in profiler.events() if e.name in ("aten::convolution", "aten::convolution_backward"))
        result["convolution_seconds_per_step"] = inside / 1e6 / args.steps
    print(json.dumps(result))


if __name__ == "__main__":
    main()
