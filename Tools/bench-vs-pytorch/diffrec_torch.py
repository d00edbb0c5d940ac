"""DiffRec pre-training's two costs in PyTorch on the CPU, for Tools/bench-vs-pytorch.sh.

Written for this comparison from DiffRec's description (Wang et al., SIGIR 2023) and Refit's DESIGN.md, with the
same shapes and work as `refit bench diffrec`: one training epoch (every training user once, batches of 400,
q-sample at a random step, MLP denoiser with dropout and tanh, reweighted MSE to x0, AdamW) and one evaluation (all
users, T deterministic reverse steps from x, train items masked, top-20). It also times the linear layer's three
products at `refit bench linear`'s shapes. Prints one JSON object.
"""
import argparse, json, math, os, time

import numpy as np
import torch


def schedule(steps, scale, low, high):
    """Linear-variance schedule: ᾱ_t = 1 − scale·linspace(low, high)_t; β from consecutive ratios."""
    variance = scale * np.linspace(low, high, steps, dtype=np.float64)
    alpha_bar = 1.0 - variance
    betas = np.empty(steps)
    betas[0] = variance[0]
    betas[1:] = np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], 0.999)
    alpha_bar = np.cumprod(1.0 - betas)
    previous = np.concatenate([[1.0], alpha_bar[:-1]])
    return betas, alpha_bar, previous


class Denoiser(torch.nn.Module):
    """f(x_t, t): MLP over [dropout(x_t), Linear(sinusoid(t))], tanh after every layer but the last."""

    def __init__(self, items, dims, embedding, dropout):
        super().__init__()
        self.embedding_size = embedding
        self.time = torch.nn.Linear(embedding, embedding)
        down = [items + embedding] + list(reversed(dims))     # 2820 → 600 → 200
        up = list(dims) + [items]                              # 200 → 600 → 2810
        sizes = list(zip(down[:-1], down[1:])) + list(zip(up[:-1], up[1:]))
        self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in sizes)
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, x, t):
        half = self.embedding_size // 2
        frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        angles = t.float()[:, None] * frequencies[None]
        h = torch.cat([self.dropout(x), self.time(torch.cat([torch.cos(angles), torch.sin(angles)], dim=1))], dim=1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = torch.tanh(h)
        return h


def dense(pairs, users, items):
    m = torch.zeros(users, items)
    m[torch.from_numpy(pairs[:, 0]).long(), torch.from_numpy(pairs[:, 1]).long()] = 1.0
    return m


def best(seconds_of, repeats):
    seconds_of()  # warm-up
    return min(seconds_of() for _ in range(repeats))


def timed(f):
    started = time.perf_counter()
    result = f()
    return time.perf_counter() - started, result


def linear_products(repeats):
    """Best GFLOP/s of forward tanh(x·Wᵀ+b), dX = dY·W and dW += dYᵀ·X at refit bench linear's shapes."""
    rows = []
    for batch, k, n in [(400, 2820, 600), (400, 600, 200), (400, 200, 600), (400, 600, 2810), (1024, 1024, 1024)]:
        x, w, b = torch.randn(batch, k), torch.randn(n, k) * 0.01, torch.randn(n)
        dy, dw = torch.randn(batch, n), torch.zeros(n, k)
        flops = 2.0 * batch * k * n
        products = {
            "forward": lambda: torch.tanh(torch.addmm(b, x, w.t())),
            "dX": lambda: dy @ w,
            "dW": lambda: dw.addmm_(dy.t(), x),
        }
        for name, product in products.items():
            for _ in range(2):
                product()
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                product()
                times.append(time.perf_counter() - started)
            rows.append({"shape": f"{batch}x{k}->{n}", "product": name, "best_gflops": flops / min(times) / 1e9,
                         "median_gflops": flops / sorted(times)[len(times) // 2] / 1e9})
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="a DiffRec split folder (train_list.npy, valid_list.npy, test_list.npy)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    train_pairs = np.load(os.path.join(args.data, "train_list.npy"))
    test_pairs = np.load(os.path.join(args.data, "test_list.npy"))
    valid_pairs = np.load(os.path.join(args.data, "valid_list.npy"))
    everything = np.concatenate([train_pairs, valid_pairs, test_pairs])
    users, items = int(everything[:, 0].max()) + 1, int(everything[:, 1].max()) + 1
    train, test = dense(train_pairs, users, items), dense(test_pairs, users, items)
    training_users = torch.nonzero(train.sum(1) > 0).flatten()

    # DiffRec's ml-1m clean settings, as Refit's ml-1m-clean preset.
    steps, batch_size, dims = 40, 400, [200, 600]
    betas, alpha_bar, previous = schedule(steps, 0.005, 0.005, 0.01)
    snr = alpha_bar / (1 - alpha_bar)
    # DiffRec's reweighting: SNR(t−1) − SNR(t), and 1 at the first step.
    weights = torch.tensor(np.concatenate([[1.0], snr[:-1] - snr[1:]]), dtype=torch.float32)
    sqrt_ab = torch.tensor(np.sqrt(alpha_bar), dtype=torch.float32)
    sqrt_1mab = torch.tensor(np.sqrt(1 - alpha_bar), dtype=torch.float32)
    coef_x0 = torch.tensor(betas * np.sqrt(previous) / (1 - alpha_bar), dtype=torch.float32)
    coef_xt = torch.tensor((1 - previous) * np.sqrt(1 - betas) / (1 - alpha_bar), dtype=torch.float32)

    model = Denoiser(items, dims, 10, 0.5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)

    def epoch():
        model.train()
        order = training_users[torch.randperm(len(training_users))]
        for start in range(0, len(order), batch_size):
            x0 = train[order[start:start + batch_size]]
            t = torch.randint(0, steps, (len(x0),))
            noise = torch.randn_like(x0)
            xt = sqrt_ab[t, None] * x0 + sqrt_1mab[t, None] * noise
            loss = (weights[t] * ((model(xt, t) - x0) ** 2).mean(1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    @torch.no_grad()
    def evaluate():
        model.eval()
        hits, relevant = 0.0, 0
        for start in range(0, users, batch_size):
            x = train[start:start + batch_size]
            state = x.clone()
            for step in reversed(range(steps)):
                t = torch.full((len(x),), step, dtype=torch.long)
                state = coef_x0[step] * model(state, t) + coef_xt[step] * state
            state[x > 0] = -float("inf")
            top = torch.topk(state, 20, dim=1).indices
            truth = test[start:start + batch_size]
            found = truth.gather(1, top).sum(1)
            counts = truth.sum(1)
            has = counts > 0
            hits += float((found[has] / counts[has]).sum())
            relevant += int(has.sum())
        return hits / max(relevant, 1)

    epoch_seconds = best(lambda: timed(epoch)[0], args.repeats)
    recall = [0.0]

    def evaluation():
        seconds, recall[0] = timed(evaluate)
        return seconds

    evaluation_seconds = best(evaluation, args.repeats)
    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "users": users, "training_users": int(len(training_users)), "items": items,
        "epoch_seconds": epoch_seconds, "evaluation_seconds": evaluation_seconds, "recall20": recall[0],
        "linear": linear_products(20),
    }))


if __name__ == "__main__":
    main()
