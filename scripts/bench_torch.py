#!/usr/bin/env python3
"""The PyTorch side of scripts/bench-train: the seed CNN (mnist-cnn) on the same Fashion-MNIST
arrays, batch sizes and threads as our fit/predict, in both memory layouts. Prints JSON."""
import json, resource, sys, time
import numpy as np
import torch
import torch.nn as nn

threads, train_npz, test_npz = int(sys.argv[1]), sys.argv[2], sys.argv[3]
torch.set_num_threads(threads)
torch.manual_seed(1)
tr, te = np.load(train_npz), np.load(test_npz)
xtr = torch.from_numpy(tr["x"]).permute(0, 3, 1, 2).contiguous()   # N×1×28×28
ytr = torch.from_numpy(tr["y"].astype(np.int64))
xte = torch.from_numpy(te["x"]).permute(0, 3, 1, 2).contiguous()

def model():
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 64), nn.ReLU(), nn.Linear(64, 10))

def train_rate(batch, layout):
    m = model()
    x = xtr
    if layout == "channels_last":
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-7)
    loss = nn.CrossEntropyLoss()
    n = x.shape[0]
    order = torch.randperm(n)
    def step(idx):
        opt.zero_grad()
        l = loss(m(x[idx]), ytr[idx])
        l.backward()
        opt.step()
    for i in range(0, 20 * batch, batch):          # warm-up
        step(order[i:i + batch])
    t = time.perf_counter()
    for i in range(0, n, batch):
        step(order[i:i + batch])
    return n / (time.perf_counter() - t), m

def infer_rate(m, layout):
    x = xte.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else xte
    m.eval()
    with torch.no_grad():
        m(x[:1000])
        t = time.perf_counter()
        for i in range(0, x.shape[0], 1000):
            m(x[i:i + 1000])
        rate = x.shape[0] / (time.perf_counter() - t)
        one = x[:1]
        best = 1e9
        for _ in range(100):
            t = time.perf_counter()
            m(one)
            best = min(best, time.perf_counter() - t)
    return rate, best

out = {}
for layout in ["default", "channels_last"]:
    r32, _ = train_rate(32, layout)
    r128, m = train_rate(128, layout)
    inf, lat = infer_rate(m, layout)
    out[layout] = {"train32": r32, "train128": r128, "infer1000": inf, "latency_s": lat}
out["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(out))
