#!/usr/bin/env python3
"""The Permutohedral Attention Module's lattice filter (Joutard et al. 2019), ported line by line from the
authors' PAM_cuda/pl.py (PermutohedralLattice.prepare and permutohedral_compute) to numpy, with a Python dict
in place of their CUDA hash table. It writes the reference outputs that tests/cpu/test_mechanisms_permutohedral.cpp
compares attnlab's lattice with (plain variant, refine 1):

  python3 make_reference.py   # writes f2.npy, f3.npy, v.npy, out2.npy, out3.npy here

Inputs are seeded: features ~ N(0, 1.5²) (d = 2 and 3), values ~ N(0, 1) (3 channels), 50 points."""
import os
import numpy as np


def pam_filter(feat, desc):
    """feat: (d, N) features, desc: (c, N) values -> (c, N), as PermutohedralLattice.forward (B = 1)."""
    n_ch, n_voxels = feat.shape
    n_ch_1 = n_ch + 1
    conv_tensor = np.tril(np.ones((n_ch + 1, n_ch + 1)), -1).T
    conv_tensor += np.diag([-i for i in range(n_ch + 1)])
    conv_tensor = conv_tensor[:, 1:]
    conv_tensor = conv_tensor @ np.sqrt(np.diag([1 / (d * (d + 1)) for d in range(1, n_ch + 1)]))
    inv_std_dev = np.sqrt(2 / 3.) * (n_ch + 1)
    conv_tensor *= inv_std_dev
    feat = conv_tensor @ feat  # (d+1, N): F.conv1d with a 1-wide kernel

    feat_v = np.round(feat / (n_ch + 1))
    rem0 = feat_v * (n_ch + 1)
    index = np.argsort(-(feat - rem0), axis=0, kind="stable")  # descending
    rank = np.argsort(index, axis=0, kind="stable")
    rank = rank + np.sum(feat_v, 0)[None, :].astype(np.int64)
    add_minus = (rank < 0).astype(np.int64) - (rank > n_ch).astype(np.int64)
    add_minus *= (n_ch + 1)
    rank = rank + add_minus
    rem0 = rem0.astype(np.int64) + add_minus

    y = (feat - rem0) / (n_ch + 1)
    v_sorted = np.sort(y, axis=0)
    barycentric = v_sorted - np.concatenate([v_sorted[-1:] - 1., v_sorted[:-1]], 0)
    canonical = np.array([[i] * ((n_ch + 1) - i) + [i - (n_ch + 1)] * i for i in range(n_ch + 1)])

    rem0 = rem0.T  # (N, d+1)
    rank = rank.T
    table = {}  # key (first d coordinates) -> 1-based rank, as HT_opp (0 = absent)
    loc = [None] * n_ch_1
    for scit in range(n_ch_1):
        loc[scit] = canonical[scit][rank[:, :-1]] + rem0[:, :-1]
        for key in map(tuple, loc[scit]):
            if key not in table:
                table[key] = len(table) + 1
    fused_loc = np.array(sorted(table, key=table.get))
    n_entries = len(table)

    def get_rank(keys):
        return np.array([table.get(tuple(k), 0) for k in keys])

    indices = np.stack([get_rank(loc[dit]) for dit in range(n_ch_1)], 1)  # (N, d+1)
    blur1, blur2 = [], []
    for dit in range(n_ch_1):
        offset = np.array([n_ch if i == dit else -1 for i in range(n_ch)])
        blur1.append(get_rank(fused_loc + offset))
        blur2.append(get_rank(fused_loc - offset))
    N_P = np.stack(blur1, 1)  # (entries, d+1)
    N_N = np.stack(blur2, 1)

    # permutohedral_compute: barycentric row scit weighs vertex loc[scit]
    n_ch_data = desc.shape[0]
    splat = np.zeros((n_ch_data, n_entries + 1))
    for scit in range(n_ch_1):
        data = desc * barycentric[scit:scit + 1]
        np.add.at(splat, (slice(None), indices[:, scit]), data)
    for dit in range(n_ch + 1):
        b1 = splat[:, N_P[:, dit]]
        b3 = splat[:, N_N[:, dit]]
        splat = np.concatenate([splat[:, :1], splat[:, 1:] + 0.5 * (b1 + b3)], 1)
    alpha = 1. / (1. + np.power(2., -n_ch))
    sliced = 0.0
    for scit in range(n_ch_1):
        sliced = sliced + splat[:, indices[:, scit]] * barycentric[scit:scit + 1] * alpha
    return sliced


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    rng = np.random.default_rng(11)
    v = rng.normal(size=(50, 3))
    np.save(os.path.join(here, "v.npy"), v.astype(np.float32))
    for d in (2, 3):
        f = (1.5 * rng.normal(size=(50, d))).astype(np.float32)
        out = pam_filter(f.astype(np.float64).T, v.astype(np.float32).astype(np.float64).T).T
        np.save(os.path.join(here, "f%d.npy" % d), f)
        np.save(os.path.join(here, "out%d.npy" % d), out)


if __name__ == "__main__":
    main()
