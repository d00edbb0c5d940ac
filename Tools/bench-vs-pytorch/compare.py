"""Prints Refit's and PyTorch's times side by side from the three JSON files Tools/bench-vs-pytorch.sh writes."""
import json, sys

refit, linear, torch = (json.load(open(path)) for path in sys.argv[1:4])
print(f"Refit:   {refit['device']}")
print(f"PyTorch: {torch['torch']}, {torch['threads']} threads")
print()
print(f"{'DiffRec, ML-1M clean':<44} {'Refit s':>9} {'PyTorch s':>10} {'ratio':>7}")
rows = [
    ("training epoch", refit["epochSeconds"], torch["epoch_seconds"]),
    ("evaluation (factored chain)", refit["evaluationSeconds"], torch["evaluation_seconds"]),
    ("evaluation, step by step (same work)", refit["stepwiseEvaluationSeconds"], torch["evaluation_seconds"]),
]
for name, ours, theirs in rows:
    print(f"{name:<44} {ours:9.3f} {theirs:10.3f} {ours / theirs:6.2f}×")
print(f"(Recall@20 of the timed evaluation: Refit {refit['recall20']:.4f}, PyTorch {torch['recall20']:.4f}; "
      "each model has had only its warm-up and timed epochs.)")
print()
print(f"{'linear layer, best GFLOP/s':<34} {'Refit':>8} {'PyTorch':>8} {'Refit/PyTorch':>14}")
names = {"forward": "forward", "inputGradient": "dX", "weightGradient": "dW"}
theirs = {(r["shape"], r["product"]): r for r in torch["linear"]}
ratios = []
for row in linear["rows"]:
    key = (row["shape"].replace("×", "x").replace("→", "->"), names[row["product"]])
    if key not in theirs:
        continue
    t = theirs[key]["best_gflops"]
    ratios.append(row["bestGFLOPS"] / t)
    print(f"{row['shape'] + ' ' + key[1]:<34} {row['bestGFLOPS']:8.1f} {t:8.1f} {ratios[-1]:13.0%}")
if ratios:
    print(f"{'smallest ratio':<34} {'':8} {'':8} {min(ratios):13.0%}")
