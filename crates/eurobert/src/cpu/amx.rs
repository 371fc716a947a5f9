//! The int8 GEMM of `dtype: 'q8'` on CPUs with AMX-INT8 (Intel Xeon from Sapphire Rapids on):
//! the same quantized weights, activations and epilogue as `vnni.rs`, with the products made
//! by the tile unit (`tdpbusd`: a 16 × 64 u8 tile times a 64 × 16 i8 tile into 16 × 16 i32,
//! 16,384 multiply-adds per instruction, 8× what AVX-512 VNNI does per cycle). onnxruntime's
//! MLAS uses it where it exists, which made its q8 1.7× faster than on the same CPU without.
//!
//! The weights need no packing of their own: `vnni::PackedW` already stores each block of 16
//! outputs as rows of 64 bytes (`[output][4 inputs]`), which is the layout of an AMX `B` tile,
//! so a tile is 16 consecutive rows of a block. For AMX the packing pads the inputs to 64 and
//! the blocks to an even count, and the activations are padded to whole tiles of rows.
//!
//! The integer sums are exact, and the epilogue does `vnni.rs`'s arithmetic in the same order,
//! so both kernels give the same bits (a test checks it). Linux only: the kernel grants a
//! process the tile state on request (`arch_prctl(ARCH_REQ_XCOMP_PERM)`); elsewhere, and where
//! `EUROBERT_AMX=0`, the VNNI kernel runs.
//!
//! Tiles, one configuration for all: tmm0–3 accumulate a 2 × 2 block of 16 × 16 outputs,
//! tmm4–5 hold two tiles of activation rows, tmm6–7 two tiles of weights.

use std::arch::asm;
use std::arch::x86_64::*;
use std::ops::Range;

use rayon::prelude::*;

use super::vnni::{Epilogue, PackedW};

/// Outputs per tile column (16 i32).
const VEC: usize = 16;
/// Activation rows per tile.
pub(crate) const TILE_ROWS: usize = 16;
/// Bytes of depth per tile (64 u8 of each row).
pub(crate) const TILE_DEPTH: usize = 64;
/// Rows per parallel task: its activations (up to 128 × 4,096 bytes) stay in L2 while a panel
/// of weights is read against them.
const BLOCK: usize = 128;
/// Blocks of 16 outputs per parallel task (2 tile columns × 2).
const PANEL: usize = 4;

/// Whether this process runs the AMX kernel: the CPU has AMX-TILE and AMX-INT8 (and the
/// AVX-512 the epilogue uses), the OS granted the tile state, and `EUROBERT_AMX` is not `0`.
pub(crate) fn available() -> bool {
    use std::sync::OnceLock;
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        if std::env::var("EUROBERT_AMX").is_ok_and(|v| v == "0") || !super::vnni::available() {
            return false;
        }
        // CPUID leaf 7: EDX bit 24 AMX-TILE, bit 25 AMX-INT8.
        let edx = __cpuid_count(7, 0).edx;
        edx & (1 << 24) != 0 && edx & (1 << 25) != 0 && request_tiles()
    })
}

/// Asks Linux for this process's permission to use the tile data state (without it the first
/// tile instruction faults); true if granted.
#[cfg(target_os = "linux")]
fn request_tiles() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: the arch_prctl system call with two integer arguments; it reads and writes no
    // memory of ours. `syscall` clobbers rcx and r11.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

#[cfg(not(target_os = "linux"))]
fn request_tiles() -> bool {
    false
}

/// The tile configuration: palette 1, sixteen rows of 64 bytes in each of the 8 tiles.
#[repr(C, align(64))]
struct Config([u8; 64]);

impl Config {
    fn new() -> Self {
        let mut c = [0u8; 64];
        c[0] = 1;
        for t in 0..8 {
            c[16 + 2 * t..18 + 2 * t].copy_from_slice(&(TILE_DEPTH as u16).to_le_bytes());
            c[48 + t] = TILE_ROWS as u8;
        }
        Config(c)
    }
}

#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: tasks write disjoint blocks (rows × columns) of the output.
unsafe impl Send for Out {}
// SAFETY: as for Send: no two tasks touch the same element.
unsafe impl Sync for Out {}

impl Out {
    /// Through a method, so closures capture the `Send` wrapper, not its raw pointer.
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// `out (rows × outputs) (+)= ...` as `vnni::gemm`, for `a`: at least `rows` rounded up to 32
/// rows of `w.depth()` u8 (the rows past `rows` are read, their sums never stored). Panics
/// unless [`available`], `w` was packed for AMX and the sizes agree.
pub(crate) fn gemm(a: &[u8], rows: usize, w: &PackedW, out: &mut [f32], e: &Epilogue) {
    assert!(available() && w.amx(), "AMX and weights packed for it");
    assert!(a.len() >= rows.next_multiple_of(2 * TILE_ROWS) * w.depth(), "activation size");
    assert_eq!(out.len(), rows * w.outputs(), "output size");
    assert!(e.row_scale.len() == rows && e.col_scale.len() == w.outputs(), "scale sizes");
    assert!(e.bias.is_none_or(|b| b.len() == w.outputs()), "bias size");
    if rows == 0 {
        return;
    }
    let vectors = w.vectors().next_multiple_of(2);
    let panels = vectors.div_ceil(PANEL);
    let blocks = rows.div_ceil(BLOCK);
    let o = Out(out.as_mut_ptr());
    (0..blocks * panels).into_par_iter().for_each(|t| {
        let (b, p) = (t / panels, t % panels);
        let rs = b * BLOCK..rows.min((b + 1) * BLOCK);
        // SAFETY: the CPU has AMX and the OS granted it (asserted); `a` holds the rows of `rs`
        // rounded up to 32 (checked above), `w` the even vectors of the panel (packed for
        // AMX), and `out` rows `rs` × the panel's columns, which no other task writes.
        unsafe { panel(a, rs, w, p * PANEL..vectors.min((p + 1) * PANEL), o.ptr(), e) }
    });
}

/// Rows `rows` (a multiple of 32 from its start) against the vectors `vs` (an even count from
/// an even start), 2 × 2 tiles at a time.
///
/// # Safety
/// AMX is [`available`]; `a` holds rows `rows.start..` rounded up to 32 of `w.depth()` bytes;
/// `w` is packed for AMX and `vs` lies in its padded vectors; `out` points at a live
/// `(rows.end.., w.outputs())` f32 matrix whose rows `rows` × the columns of `vs` no one else
/// touches during the call.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn panel(a: &[u8], rows: Range<usize>, w: &PackedW, vs: Range<usize>, out: *mut f32, e: &Epilogue) {
    let cfg = Config::new();
    let depth = w.depth();
    let ktiles = depth / TILE_DEPTH;
    let block = w.block();
    // Four 16 × 16 i32 tiles of sums, stored for the epilogue.
    let mut sums = [0i32; 4 * TILE_ROWS * VEC];
    // SAFETY: the configuration is a valid palette-1 layout (8 tiles of 16 × 64 bytes).
    unsafe { asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly)) };
    let mut r0 = rows.start;
    while r0 < rows.end {
        let mut v = vs.start;
        while v < vs.end {
            let a0 = a[r0 * depth..].as_ptr();
            // SAFETY: rows r0..r0 + 32 of `a` exist (the caller's contract: rounded up to 32),
            // each `depth` bytes; the weight tiles are 16 rows of 64 bytes inside blocks v and
            // v + 1 of `w.data` (padded for AMX); `sums` holds four 1 KB tiles.
            unsafe {
                let b0 = w.data.as_ptr().add(v * block);
                asm!(
                    "tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3",
                    options(nostack, nomem),
                );
                for k in 0..ktiles {
                    let ak = a0.add(k * TILE_DEPTH);
                    let bk = b0.add(k * TILE_ROWS * TILE_DEPTH);
                    asm!(
                        "tileloadd tmm4, [{a} + {lda} * 1]",
                        "tileloadd tmm5, [{a2} + {lda} * 1]",
                        "tileloadd tmm6, [{b} + {ldb} * 1]",
                        "tileloadd tmm7, [{b2} + {ldb} * 1]",
                        "tdpbusd tmm0, tmm4, tmm6",
                        "tdpbusd tmm1, tmm4, tmm7",
                        "tdpbusd tmm2, tmm5, tmm6",
                        "tdpbusd tmm3, tmm5, tmm7",
                        a = in(reg) ak,
                        a2 = in(reg) ak.add(TILE_ROWS * depth),
                        lda = in(reg) depth,
                        b = in(reg) bk,
                        b2 = in(reg) bk.add(block),
                        ldb = in(reg) TILE_DEPTH,
                        options(nostack, readonly),
                    );
                }
                let s = sums.as_mut_ptr();
                asm!(
                    "tilestored [{s0} + {ld} * 1], tmm0",
                    "tilestored [{s1} + {ld} * 1], tmm1",
                    "tilestored [{s2} + {ld} * 1], tmm2",
                    "tilestored [{s3} + {ld} * 1], tmm3",
                    s0 = in(reg) s,
                    s1 = in(reg) s.add(TILE_ROWS * VEC),
                    s2 = in(reg) s.add(2 * TILE_ROWS * VEC),
                    s3 = in(reg) s.add(3 * TILE_ROWS * VEC),
                    ld = in(reg) VEC * 4,
                    options(nostack),
                );
            }
            // Tile (i, j): rows r0 + 16i.., vector v + j.
            for (t, tile) in sums.chunks_exact(TILE_ROWS * VEC).enumerate() {
                let (i, j) = (t / 2, t % 2);
                let first = r0 + i * TILE_ROWS;
                let last = rows.end.min(first + TILE_ROWS);
                // SAFETY: rows first..last lie in `rows`, vector v + j in the panel; the caller's
                // contract for `out`.
                unsafe { store(tile, first..last, v + j, w, out, e) };
            }
            v += 2;
        }
        r0 += 2 * TILE_ROWS;
    }
    // SAFETY: releases this thread's tile state; no tile is in use past this point.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// The epilogue of one 16 × 16 tile of sums: `vnni.rs`'s, operation for operation.
///
/// # Safety
/// The CPU has AVX-512 F/BW; rows `rows` and vector `v` are the tile's own part of `out` (a
/// live `(.., w.outputs())` matrix), `tile` its 16 rows of 16 sums.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn store(tile: &[i32], rows: Range<usize>, v: usize, w: &PackedW, out: *mut f32, e: &Epilogue) {
    let c0 = v * VEC;
    let outputs = w.outputs();
    if c0 >= outputs {
        return;
    }
    let mask: __mmask16 = if outputs - c0 >= VEC { 0xffff } else { (1u16 << (outputs - c0)) - 1 };
    // SAFETY: `zero_sum` and the scales hold whole blocks of 16 from c0 (masked loads past
    // `outputs`); the stores write row r's masked columns c0.. of `out` (the contract).
    unsafe {
        let z = _mm512_loadu_si512(w.zero_sum.as_ptr().add(c0) as *const _);
        let sw = _mm512_maskz_loadu_ps(mask, e.col_scale.as_ptr().add(c0));
        for (i, r) in rows.enumerate() {
            let acc = _mm512_loadu_si512(tile.as_ptr().add(i * VEC) as *const _);
            let sa = _mm512_set1_ps(e.row_scale[r]);
            let mut y = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc, z)), sa), sw);
            if let Some(bias) = e.bias {
                y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask, bias.as_ptr().add(c0)));
            }
            let o = out.add(r * outputs + c0);
            if e.accumulate {
                y = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, o), y);
            }
            if let Some(which) = e.act {
                y = super::simd::act_avx512(y, which);
            }
            _mm512_mask_storeu_ps(o, mask, y);
        }
    }
}
