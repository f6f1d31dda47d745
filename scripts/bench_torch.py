#!/usr/bin/env python3
"""The PyTorch side of scripts/bench-train and scripts/bench-seq. Prints one line of JSON.

  bench_torch.py THREADS TRAIN.npz TEST.npz
      (scripts/bench-train) the seed CNN (mnist-cnn) on the same Fashion-MNIST arrays, batch
      sizes and threads as our fit/predict, in both memory layouts.
  bench_torch.py rows-lstm THREADS TRAIN.npz TEST.npz [--batch 128] [--epochs 3 --accuracy]
  bench_torch.py lstm-text THREADS [--samples 6400] [--test-samples 5000] [--batch 64]
  bench_torch.py gru-text THREADS [--samples 6400] [--test-samples 5000] [--batch 64]
  bench_torch.py transformer-text THREADS [--samples 6400] [--test-samples 5000] [--batch 64]
      (scripts/bench-seq) the sequence presets; see seq_main below.

Conventions, all modes: torch.set_num_threads(THREADS), seed 1, Adam lr 1e-3 (eps 1e-7, as
Keras and our fit), cross-entropy; training samples/s over one epoch of the training samples
after 20 warm-up batches that are not timed; inference samples/s at batch 1000 under no_grad
in eval mode, after one untimed warm-up batch (sequence modes: the best of 3 passes)."""
import json, resource, sys, time
import numpy as np
import torch
import torch.nn as nn

SEQ_MODES = ("rows-lstm", "lstm-text", "gru-text", "transformer-text")


def seq_main(argv):
    """The sequence models of scripts/bench-seq, on the shapes our presets of the same names use.
      rows-lstm         Fashion-MNIST read as 28 time steps of 28 features (x/255):
                        LSTM(28→128) → last hidden state → Linear(128, 10); batch 128.
      lstm-text         Embedding(20000, 64) → LSTM(64→128) → last hidden state → Linear(128, 20);
                        batch 64.
      gru-text          the same with GRU(64→128) (PyTorch's GRU applies r after h·W_hn + b_hn, as
                        ours and Keras's reset_after do); batch 64.
      transformer-text  Embedding(20000, 64) + learned positions (64×64) → TransformerEncoderLayer
                        (d_model 64, 4 heads, feed-forward 128, GELU, pre-norm, no dropout)
                        → LayerNorm(64) → mean over time → Linear(64, 20); batch 64.
    Text: T = 64 token ids uniform in 2…V−1 (0 and 1 are padding and unknown in our vocabularies),
    every sequence full length, labels uniform in 0…19; seeded, so every run sees the same data.
    With --accuracy (rows-lstm): trains --epochs epochs on all of TRAIN.npz and reports the test
    accuracy; the training rate is then over all epochs."""
    import argparse, copy
    ap = argparse.ArgumentParser(prog="bench_torch.py MODE")
    ap.add_argument("mode", choices=SEQ_MODES)
    ap.add_argument("threads", type=int)
    ap.add_argument("train_npz", nargs="?")
    ap.add_argument("test_npz", nargs="?")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--samples", type=int, default=6400, help="text modes: training samples")
    ap.add_argument("--test-samples", type=int, default=5000, help="text modes: inference samples")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--accuracy", action="store_true", help="rows-lstm: report test accuracy")
    ap.add_argument("--warmup", type=int, default=20, help="untimed training batches")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    V, T, E, H, C = 20000, 64, 64, 128, 20

    class LastHidden(nn.Module):          # LSTM (or GRU) → its last hidden state
        def __init__(self, d_in, hidden, cell=nn.LSTM):
            super().__init__()
            self.rnn = cell(d_in, hidden, batch_first=True)
        def forward(self, x):
            _, h = self.rnn(x)
            return (h[0] if isinstance(h, tuple) else h)[-1]

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, E)
            self.pos = nn.Parameter(torch.randn(T, E) * 0.02)
            self.block = nn.TransformerEncoderLayer(d_model=E, nhead=4, dim_feedforward=128, dropout=0.0,
                                                    activation="gelu", batch_first=True, norm_first=True)
            self.norm = nn.LayerNorm(E)
            self.out = nn.Linear(E, C)
        def forward(self, x):
            h = self.norm(self.block(self.emb(x) + self.pos))
            return self.out(h.mean(dim=1))

    if a.mode == "rows-lstm":
        if not a.train_npz or not a.test_npz:
            ap.error("rows-lstm needs TRAIN.npz and TEST.npz")
        def rows(path):
            z = np.load(path)
            x = z["x"]
            x = x.astype(np.float32) / 255 if x.dtype == np.uint8 else x.astype(np.float32)  # normalized already
            return torch.from_numpy(x.reshape(x.shape[0], 28, 28)), torch.from_numpy(z["y"].astype(np.int64).reshape(-1))
        xtr, ytr = rows(a.train_npz)
        xte, yte = rows(a.test_npz)
        batch = a.batch or 128
        make = lambda: nn.Sequential(LastHidden(28, H), nn.Linear(H, 10))
    else:
        g = torch.Generator().manual_seed(1)
        xtr = torch.randint(2, V, (a.samples, T), generator=g)
        ytr = torch.randint(0, C, (a.samples,), generator=g)
        xte = torch.randint(2, V, (a.test_samples, T), generator=g)
        yte = torch.randint(0, C, (a.test_samples,), generator=g)
        batch = a.batch or 64
        if a.mode == "lstm-text":
            make = lambda: nn.Sequential(nn.Embedding(V, E), LastHidden(E, H), nn.Linear(H, C))
        elif a.mode == "gru-text":
            make = lambda: nn.Sequential(nn.Embedding(V, E), LastHidden(E, H, nn.GRU), nn.Linear(H, C))
        else:
            make = Transformer

    m = make()
    loss = nn.CrossEntropyLoss()
    def steps(model, opt, order):
        for i in range(0, order.shape[0], batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
    n = xtr.shape[0]
    # Warm-up on a copy, so the timed model starts from its initial weights (what --accuracy trains).
    w = copy.deepcopy(m)
    steps(w, torch.optim.Adam(w.parameters(), lr=1e-3, eps=1e-7), torch.randperm(n)[:a.warmup * batch])
    del w
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-7)
    m.train()
    t = time.perf_counter()
    for _ in range(a.epochs):
        steps(m, opt, torch.randperm(n))
    train = a.epochs * n / (time.perf_counter() - t)

    m.eval()
    with torch.no_grad():
        m(xte[:1000])
        best = 1e9
        for _ in range(3):                # the best of 3 passes: the machine is shared
            t = time.perf_counter()
            preds = [m(xte[i:i + 1000]).argmax(1) for i in range(0, xte.shape[0], 1000)]
            best = min(best, time.perf_counter() - t)
        infer = xte.shape[0] / best
    out = {"mode": a.mode, "threads": a.threads, "batch": batch, "train_samples": n, "epochs": a.epochs,
           "train": train, "test_samples": xte.shape[0], "infer1000": infer,
           "parameters": sum(p.numel() for p in m.parameters()), "torch": torch.__version__}
    if a.accuracy:
        out["accuracy"] = (torch.cat(preds) == yte).float().mean().item()
    out["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(out))


if len(sys.argv) > 1 and sys.argv[1] in SEQ_MODES:
    seq_main(sys.argv[1:])
    sys.exit(0)

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
