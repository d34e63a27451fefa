"""A PyTorch copy of the train stage's recipe, to scout recipes on a GPU (issue 17).

Not part of the pipeline and not run by the tests: it needs PyTorch and a GPU,
neither of which the project depends on. It answers "which settings are worth
a CPU run?" in minutes: the 47 configurations of ``configs.json`` took 8
minutes on one H200, where each would take 10-60 minutes on the two CPU cores
the pipeline is measured on. Only the Keras train stage's own runs decide what
the pipeline ships (docs/explanation/speed.md).

It copies the Keras choices that change results: Glorot-uniform initialisation
and zero biases; BatchNormalization with Keras' momentum 0.9 (PyTorch's 0.1)
and epsilon 1e-3; Adam with epsilon 1e-7; a cosine decay to 0, step by step;
each training image mirrored with probability 0.5; shifts with zero fill; the
validation split as 10% of the training set. Its default convnet ends at
93.08% test accuracy after 18 epochs, where the Keras train stage gives 93.22%.

Usage on the GPU machine, one process per worker sharing the GPU:
``python3 torch_proxy.py WORKER WORKERS results.jsonl``, with the Fashion-MNIST
``*.gz`` files beside this script; each run appends one JSON line.
"""

import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as functional
from torch import nn

# Plain float32 arithmetic, as the CPU runs it (TF32 would round products).
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.benchmark = True
HERE = os.path.dirname(os.path.abspath(__file__))
VALIDATION_COUNT = 6000
# Filters of each stage: every stage's convolutions, then 2x2 max pooling.
MODELS = {
    "convnet": [[32], [64], [128]],
    "mid": [[24], [48], [96]],
    "slim": [[16], [32], [64]],
    "wide48": [[48], [96], [192]],
    "vgg_2x": [[32], [64, 64], [128, 128]],
    "c32_64x2": [[32], [64, 64], [128]],
    "wide64": [[64], [128], [256]],
}


def read_idx(name: str) -> np.ndarray:
    with gzip.open(os.path.join(HERE, name)) as stream:
        content = stream.read()
    if "labels" in name:
        return np.frombuffer(content, np.uint8, offset=8).astype(np.int64)
    return np.frombuffer(content, np.uint8, offset=16).reshape(-1, 1, 28, 28)


def load_splits(device: str):
    """(train, validation, test) pairs of image and label tensors on ``device``."""
    train_images = read_idx("train-images-idx3-ubyte.gz")
    train_labels = read_idx("train-labels-idx1-ubyte.gz")
    order = np.random.default_rng(42).permutation(len(train_labels))
    held_out, kept = order[:VALIDATION_COUNT], order[VALIDATION_COUNT:]

    def pair(images, labels):
        return (
            torch.tensor(images, device=device).float() / 255.0,
            torch.tensor(labels, device=device),
        )

    return (
        pair(train_images[kept], train_labels[kept]),
        pair(train_images[held_out], train_labels[held_out]),
        pair(read_idx("t10k-images-idx3-ubyte.gz"), read_idx("t10k-labels-idx1-ubyte.gz")),
    )


def keras_initialisation(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Network(nn.Module):
    """models.build_convnet with other filters: Conv-BatchNorm-ReLU stages, then the head."""

    def __init__(self, stages, dense=128, dropout=0.2, head="flatten"):
        super().__init__()
        layers, channels, side = [], 1, 28
        for filters_of_stage in stages:
            for filters in filters_of_stage:
                layers += [
                    nn.Conv2d(channels, filters, 3, padding=1, bias=False),
                    nn.BatchNorm2d(filters, eps=1e-3, momentum=0.1),
                    nn.ReLU(),
                ]
                channels = filters
            layers.append(nn.MaxPool2d(2))
            side //= 2
        self.features = nn.Sequential(*layers)
        if head == "flatten":
            self.head = nn.Sequential(
                nn.Flatten(),
                nn.Dropout(dropout),
                nn.Linear(channels * side * side, dense),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(dense, 10),
            )
        else:  # global average pooling
            self.head = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, 10)
            )
        self.apply(keras_initialisation)

    def forward(self, images):
        return self.head(self.features(images))


def augment(images, generator, flip: bool, shift: int):
    count, device = images.shape[0], images.device
    if flip:
        mirrored = torch.rand(count, device=device, generator=generator) < 0.5
        images = torch.where(mirrored[:, None, None, None], images.flip(3), images)
    if shift:
        padded = functional.pad(images, (shift,) * 4)[:, 0]
        across = torch.randint(0, 2 * shift + 1, (count,), device=device, generator=generator)
        down = torch.randint(0, 2 * shift + 1, (count,), device=device, generator=generator)
        pixels = torch.arange(28, device=device)
        rows = (down[:, None] + pixels[None])[:, :, None]
        columns = (across[:, None] + pixels[None])[:, None, :]
        images = padded[torch.arange(count, device=device)[:, None, None], rows, columns][:, None]
    return images


@torch.no_grad()
def evaluate(model, images, labels, flip_averaged=False):
    """(accuracy, loss); with ``flip_averaged`` each image scores as the mean with its mirror."""
    model.eval()
    correct, loss = 0, 0.0
    for start in range(0, len(images), 2000):
        batch, truth = images[start : start + 2000], labels[start : start + 2000]
        logits = model(batch)
        if flip_averaged:
            both = [
                functional.log_softmax(logits, 1),
                functional.log_softmax(model(batch.flip(3)), 1),
            ]
            logits = torch.logsumexp(torch.stack(both), 0)
        correct += (logits.argmax(1) == truth).sum().item()
        loss += functional.cross_entropy(logits, truth, reduction="sum").item()
    return correct / len(images), loss / len(images)


def learning_rate(config: dict, step: int, total: int, warmup: int) -> float:
    peak = config["lr"]
    if config.get("sched", "cosine") == "onecycle":
        rise = int(0.25 * total)
        if step < rise:
            return peak * step / rise
        return peak * 0.5 * (1 + math.cos(math.pi * (step - rise) / (total - rise)))
    if step < warmup:
        return peak * step / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def run(config: dict, splits, device: str) -> dict:
    (train_images, train_labels), (val_images, val_labels), (test_images, test_labels) = splits
    torch.manual_seed(config["seed"])
    generator = torch.Generator(device=device)
    generator.manual_seed(config["seed"])
    model = Network(
        MODELS[config["model"]],
        dropout=config.get("dropout", 0.2),
        head=config.get("head", "flatten"),
    )
    model = model.to(device).to(memory_format=torch.channels_last)
    batch_size, epochs = config.get("batch", 128), config["epochs"]
    steps = math.ceil(len(train_labels) / batch_size)
    total, warmup = steps * epochs, int(config.get("warmup", 0) * steps)
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=config["lr"],
        eps=1e-7,
        betas=tuple(config.get("betas", (0.9, 0.999))),
    )
    average = None
    if config.get("ema"):
        average = torch.optim.swa_utils.AveragedModel(
            model,
            multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(config["ema"]),
            use_buffers=True,
        )
    step, started, curve = 0, time.time(), []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_labels), device=device, generator=generator)
        for index in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step, total, warmup)
            chosen = order[index * batch_size : (index + 1) * batch_size]
            images = augment(
                train_images[chosen], generator, config.get("flip", True), config.get("shift", 0)
            )
            logits = model(images.contiguous(memory_format=torch.channels_last))
            loss = functional.cross_entropy(
                logits, train_labels[chosen], label_smoothing=config.get("ls", 0.0)
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if average is not None:
                average.update_parameters(model)
        if epoch in (epochs // 2, epochs - 1):
            curve.append(
                (epoch + 1, round(evaluate(average or model, val_images, val_labels)[0], 4))
            )
    final = average.module if average is not None else model
    val_accuracy, val_loss = evaluate(final, val_images, val_labels)
    test_accuracy, _ = evaluate(final, test_images, test_labels)
    return dict(
        config,
        val=val_accuracy,
        val_loss=val_loss,
        test=test_accuracy,
        val_tta=evaluate(final, val_images, val_labels, flip_averaged=True)[0],
        test_tta=evaluate(final, test_images, test_labels, flip_averaged=True)[0],
        curve=curve,
        seconds=round(time.time() - started, 1),
    )


if __name__ == "__main__":
    worker, workers, results_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    with open(os.path.join(HERE, "configs.json")) as stream:
        configs = json.load(stream)[worker::workers]
    splits = load_splits("cuda")
    with open(results_path, "a") as results:
        for config in configs:
            line = json.dumps(run(config, splits, "cuda"))
            results.write(line + "\n")
            results.flush()
            print(line, flush=True)
