#!/usr/bin/env python3
"""Fits the odd polynomial erf(a) ≈ a·P(a²) on [0, 3] (P of degree 8) that `dtype: 'q8'` uses
for GELU (crates/eurobert/src/cpu/simd.rs, ERF_POLY), and prints its coefficients as f32 and
its error evaluated in f32 as the kernel does (clamped at 3, min 1).

A least-squares fit reweighted toward the largest errors (near minimax). Needs numpy.

    python tools/fit_erf_poly.py
"""
from math import erf

import numpy as np

R, DEG = 3.0, 8
verf = np.vectorize(erf)
x = np.linspace(0, R, 40001)
y = verf(x)
A = np.stack([x * (x**2) ** k for k in range(DEG + 1)], 1)
w = np.ones_like(x)
for _ in range(200):
    c, *_ = np.linalg.lstsq(A * w[:, None], y * w, rcond=None)
    e = np.abs(A @ c - y)
    w = w * (1 + e / e.max())
cf = [np.float32(ci) for ci in c]
print("ERF_POLY =", [float(ci) for ci in cf])
xx = np.linspace(-7, 7, 400001).astype(np.float32)
u = (xx * np.float32(0.70710677)).astype(np.float32)
a = np.minimum(np.abs(u), np.float32(R)).astype(np.float32)
s = (a * a).astype(np.float32)
p = cf[-1]
for ci in cf[-2::-1]:
    p = (p * s + ci).astype(np.float32)
er = np.minimum(a * p, np.float32(1)).astype(np.float32) * np.sign(u)
exact = verf(u.astype(np.float64))
g = (0.5 * xx * (1 + er)).astype(np.float32)
gt = 0.5 * xx.astype(np.float64) * (1 + exact)
print(f"max |erf error| {np.abs(er - exact).max():.2e}, max |GELU error| {np.abs(g - gt).max():.2e}, "
      f"max |GELU error| / max(1, |x|) {(np.abs(g - gt) / np.maximum(1, np.abs(xx))).max():.2e}")
