"""The seed CNN (Twister2Flow's / SmartSim's MNIST network) trained by PyTorch on this machine,
for scripts/bench-allreduce.sh: same data, same normalisation, same optimizer settings.
Prints one JSON line per epoch: {"epoch", "seconds", "accuracy"}.

    python bench_torch.py --threads 1 --batch 128 --epochs 1 [--limit N] [--optimizer sgd|adam]
"""
import argparse, gzip, json, os, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "datasets", "mnist"))
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("--batch", type=int, default=128)
    a.add_argument("--epochs", type=int, default=1)
    a.add_argument("--lr", type=float, default=0.01)
    a.add_argument("--momentum", type=float, default=0.5)
    a.add_argument("--optimizer", default="sgd")
    a.add_argument("--limit", type=int, default=0)
    a.add_argument("--seed", type=int, default=1)
    args = a.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x = idx(os.path.join(args.data, "train-images.idx3-ubyte.gz"))
    y = idx(os.path.join(args.data, "train-labels.idx1-ubyte.gz"))
    tx = idx(os.path.join(args.data, "t10k-images.idx3-ubyte.gz"))
    ty = idx(os.path.join(args.data, "t10k-labels.idx1-ubyte.gz"))
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    norm = lambda a: torch.from_numpy(((a.astype(np.float32) / 255.0 - 0.1307) / 0.3081)[:, None])
    x, tx = norm(x), norm(tx)
    y, ty = torch.from_numpy(y.astype(np.int64)), torch.from_numpy(ty.astype(np.int64))
    model = Net()
    if args.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    g = torch.Generator().manual_seed(args.seed)
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(x), generator=g)
        t = time.perf_counter()
        for i in range(0, len(x), args.batch):
            idx_ = order[i:i + args.batch]
            opt.zero_grad()
            loss = F.nll_loss(model(x[idx_]), y[idx_])
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - t
        model.eval()
        with torch.no_grad():
            right = sum((model(tx[i:i + 1000]).argmax(1) == ty[i:i + 1000]).sum().item() for i in range(0, len(tx), 1000))
        print(json.dumps({"epoch": epoch, "seconds": round(seconds, 2), "accuracy": right / len(tx)}), flush=True)


if __name__ == "__main__":
    main()
