#!/usr/bin/env python3
"""Writes the hand-made CHAI configs of the saving-versus-KL sweep in
docs/FIDELITY.md to docs/fidelity/configs/.

Each config is the shipped config's model block with a plan given as
"FIRST-LAST:CLUSTERS:KHEADS" ranges (later ranges override earlier ones;
layers not named keep all 9 heads and 3 key heads). These are sweep points,
not calibrated configs, so they carry no "calibration" block (it is
optional in the config format). Run by hand:

    python3 docs/fidelity/make_configs.py
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SHIPPED = os.path.join(HERE, "..", "..", "engine", "chai", "configs",
                       "SmolLM2-135M-Instruct.json")

PLANS = {
    "l29-3-1": "29-29:3:1",
    "l27-29-3-1": "27-29:3:1",
    "l25-29-3-1": "25-29:3:1",
    "l24-29-3-1": "24-29:3:1",
    "l23-29-3-1": "23-29:3:1",
    "l20-29-3-1": "20-29:3:1",
    "l15-29-3-1": "15-29:3:1",
    "l22-29-6-2": "22-29:6:2",
    "l20-29-6-2": "20-29:6:2",
    "l15-29-6-2": "15-29:6:2",
    "l0-29-6-2": "0-29:6:2",
    "l15-29-8-3": "15-29:8:3",
}


def plan_layers(spec, n_layers, n_heads, n_kv):
    layers = [[n_heads, n_kv] for _ in range(n_layers)]
    for part in spec.split(","):
        rng, clusters, k_heads = part.split(":")
        first, last = (int(v) for v in rng.split("-"))
        for layer in range(first, last + 1):
            layers[layer] = [int(clusters), int(k_heads)]
    return layers


def main():
    shipped = json.load(open(SHIPPED))
    model = shipped["model"]
    for name, spec in PLANS.items():
        layers = plan_layers(spec, model["n_layers"], model["n_heads"], model["n_kv_heads"])
        config = {
            "format": "chai-cluster-config",
            "version": 1,
            "model": model,
            "layers": [{"layer": i, "clusters": c, "k_heads": k} for i, (c, k) in enumerate(layers)],
        }
        with open(os.path.join(HERE, "configs", name + ".json"), "w") as f:
            json.dump(config, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
