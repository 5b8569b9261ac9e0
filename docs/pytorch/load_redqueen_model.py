"""Load a model redqueen saved (`redqueen run --save-models`) into PyTorch.

    python3 load_redqueen_model.py MODEL.safetensors [INPUTS.json]

Prints the logits, as JSON, of the images in INPUTS.json (a list of images,
each flattened in PyTorch's NCHW order, values in [0, 1]), or of two random
images. The architecture comes from the file's metadata; the weights load
with `load_state_dict` as they are: no conversion.
"""

import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn


def redqueen_model(path):
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    arch = json.loads(meta["redqueen.model"])
    c, h, w = map(int, meta["redqueen.input"].split()[0].split("x"))
    classes = int(meta["redqueen.classes"])
    if arch["kind"] == "mlp":
        widths = [c * h * w] + arch["hidden"]
        layers = [nn.Flatten()]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], classes))
    else:
        (c1, c2), dense = arch["channels"], arch["dense"]
        layers = [
            nn.Conv2d(c, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(c2 * (h // 4) * (w // 4), dense), nn.ReLU(),
            nn.Linear(dense, classes),
        ]
    model = nn.Sequential(*layers)
    model.load_state_dict(load_file(path))
    return model.eval(), (c, h, w)


if __name__ == "__main__":
    model, shape = redqueen_model(sys.argv[1])
    if len(sys.argv) > 2:
        with open(sys.argv[2]) as f:
            x = torch.tensor(json.load(f), dtype=torch.float32).reshape(-1, *shape)
    else:
        x = torch.rand(2, *shape)
    with torch.no_grad():
        print(json.dumps(model(x).tolist()))
