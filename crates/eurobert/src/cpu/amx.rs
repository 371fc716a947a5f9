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
use super::Shared;

/// Outputs per tile column (16 i32).
const VEC: usize = 16;
/// Activation rows per tile.
pub(crate) const TILE_ROWS: usize = 16;
/// Bytes of depth per tile (64 u8 of each row).
pub(crate) const TILE_DEPTH: usize = 64;
/// Rows per parallel task: with [`PANEL`] their activations (64 × up to 4,096 bytes) are read
/// from L1/L2 eight times per tile pair, and a panel of weights four times; 128 rows × 4
/// blocks ran 10–30% slower at BERT-base's shapes and 512–3,072 rows (`int8_probe … bert`).
const BLOCK: usize = 64;
/// Blocks of 16 outputs per parallel task (2 tile columns × 4); [`SMALL_PANEL`] where fewer
/// rows would leave too few tasks for the threads.
const PANEL: usize = 8;
/// Blocks per task up to [`FEW_ROWS`] rows (at 20–64 rows, 8 blocks ran up to 25% slower).
const SMALL_PANEL: usize = 4;
/// See [`SMALL_PANEL`].
const FEW_ROWS: usize = 128;
/// Weight tiles fetched ahead of their use where one tile-row of rows streams them (1 KB a
/// tile, per stream of the two). One bert-base q8 sentence (85 MB of weights from memory,
/// 16–32 tokens), single-sentence p50 of the throughput example, 3 alternations: none
/// 6.8–7.7 ms, 4 tiles 6.6–7.1, 8 tiles 6.2–7.0, 16 tiles 6.0–8.2.
const AHEAD: usize = 8;

/// Whether a projection of `rows` activation rows runs on the tiles (where the kernel is
/// available): from a tile of rows on. Below it both kernels are bound by the weights'
/// bandwidth, and the VNNI/`vdpbf16ps` kernels run the same packing (`int8_probe`: one row
/// 39–53 GOP/s against AMX's 35–44; 20 rows 0.6–0.7 against 0.8–1.0 TOP/s).
pub(crate) fn runs(rows: usize) -> bool {
    rows >= TILE_ROWS
}

/// Rows the kernels read of `rows` activation rows: whole 2-tile blocks (the rows past `rows`
/// are read, their sums never stored).
pub(crate) fn rows_read(rows: usize) -> usize {
    rows.next_multiple_of(2 * TILE_ROWS)
}

/// Steps of a weight packing for AMX, each `per_step` inputs (4 int8, 2 bf16): whole tiles of
/// 64 bytes of depth.
pub(crate) fn steps(inputs: usize, per_step: usize) -> usize {
    inputs.div_ceil(TILE_ROWS * per_step) * TILE_ROWS
}

/// Blocks of 16 outputs of a packing for AMX: an even count (the kernel takes 2 at a time).
pub(crate) fn blocks(outputs: usize) -> usize {
    outputs.div_ceil(VEC).next_multiple_of(2)
}

/// Whether this process runs the int8 kernel: the CPU has AMX-TILE and AMX-INT8 (and the
/// AVX-512 VNNI of the epilogue and short inputs), the OS granted the tile state, and
/// `EUROBERT_AMX` is not `0`.
pub(crate) fn available() -> bool {
    use std::sync::OnceLock;
    static OK: OnceLock<bool> = OnceLock::new();
    // CPUID leaf 7: EDX bit 25 AMX-INT8.
    *OK.get_or_init(|| super::vnni::available() && __cpuid_count(7, 0).edx & (1 << 25) != 0 && tiles())
}

/// Whether this process runs the bf16 kernel ([`gemm_bf16`]): AMX-BF16 (with AVX512-BF16 for
/// short inputs), the tile state granted, `EUROBERT_AMX` not `0`.
pub(crate) fn bf16_available() -> bool {
    use std::sync::OnceLock;
    static OK: OnceLock<bool> = OnceLock::new();
    // CPUID leaf 7: EDX bit 22 AMX-BF16.
    *OK.get_or_init(|| std::is_x86_feature_detected!("avx512bf16") && __cpuid_count(7, 0).edx & (1 << 22) != 0 && tiles())
}

/// AMX-TILE present and its state granted to this process (asked once), unless `EUROBERT_AMX=0`.
fn tiles() -> bool {
    use std::sync::OnceLock;
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        // CPUID leaf 7: EDX bit 24 AMX-TILE.
        !std::env::var("EUROBERT_AMX").is_ok_and(|v| v == "0")
            && std::is_x86_feature_detected!("avx512f")
            && __cpuid_count(7, 0).edx & (1 << 24) != 0
            && request_tiles()
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

/// `out (rows × outputs) (+)= ...` as `vnni::gemm`, for `a`: at least [`rows_read`] rows of
/// `w.depth()` u8. Panics
/// unless [`available`], `w` was packed for AMX and the sizes agree.
pub(crate) fn gemm(a: &[u8], rows: usize, w: &PackedW, out: &mut [f32], e: &Epilogue) {
    assert!(available() && w.amx(), "AMX and weights packed for it");
    assert!(a.len() >= rows_read(rows) * w.depth(), "activation size");
    assert_eq!(out.len(), rows * w.outputs(), "output size");
    assert!(e.row_scale.len() == rows && e.col_scale.len() == w.outputs(), "scale sizes");
    assert!(e.bias.is_none_or(|b| b.len() == w.outputs()), "bias size");
    let weights =
        Weights { data: Shared(w.data.as_ptr().cast_mut().cast()), block: w.block(), ktiles: w.depth() / TILE_DEPTH, vectors: w.vectors() };
    // Tasks write disjoint blocks (rows × columns) of `out`.
    let o = Shared(out.as_mut_ptr());
    run::<false>(a.as_ptr(), w.depth(), rows, weights, &|tile, rs, v| {
        // SAFETY: `run` hands each tile's rows and vector to one call, inside `out` (checked
        // above); the CPU has AVX-512 F/BW (`available`).
        unsafe { store_int8(tile, rs, v, w, o.ptr(), e) }
    });
}

/// `out (rows × outputs) (+)= a·Wᵀ + bias` for bf16 activation rows `a` (at least
/// [`rows_read`] rows of `depth` values) and bf16 weights packed in pairs for AMX: a block
/// of 16 outputs at each `block` u16 of `data`, `depth / 2` pair-steps of 64 bytes each.
/// Panics unless [`bf16_available`] and the sizes agree.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_bf16(
    a: &[u16],
    rows: usize,
    depth: usize,
    data: &[u16],
    block: usize,
    outputs: usize,
    out: &mut [f32],
    bias: Option<&[f32]>,
    accumulate: bool,
) {
    assert!(bf16_available(), "AMX-BF16");
    assert!(depth.is_multiple_of(TILE_DEPTH / 2) && block * 2 == depth / 2 * TILE_DEPTH, "depth in whole tiles, blocks of 16 outputs");
    assert!(data.len() >= blocks(outputs) * block, "weights in an even count of blocks");
    assert!(a.len() >= rows_read(rows) * depth, "activation size");
    assert_eq!(out.len(), rows * outputs, "output size");
    assert!(bias.is_none_or(|b| b.len() == outputs), "bias size");
    let weights = Weights {
        data: Shared(data.as_ptr().cast_mut().cast()),
        block: 2 * block,
        ktiles: 2 * depth / TILE_DEPTH,
        vectors: outputs.div_ceil(VEC),
    };
    // Tasks write disjoint blocks (rows × columns) of `out`.
    let o = Shared(out.as_mut_ptr());
    run::<true>(a.as_ptr().cast(), 2 * depth, rows, weights, &|tile, rs, v| {
        // SAFETY: as in `gemm`: the tile's own rows and vector of `out`; AVX-512 F/BW present.
        unsafe { store_f32(tile, rs, v, outputs, o.ptr(), bias, accumulate) }
    });
}

/// Part of a bf16 packing for AMX (`half_gemm::PackedW`): its `data`, `block` u16 per block of
/// 16 outputs, from block `first` (even) and pair-step `step` on.
pub(crate) struct Part<'a> {
    pub data: &'a [u16],
    pub block: usize,
    pub first: usize,
    pub step: usize,
}

/// `out (rows × cols) (+)= a·Wᵀ` on the calling thread alone (inside a parallel task: how
/// attention runs QKᵀ and PV): bf16 rows `a` (at least [`rows_read`] rows of `depth`, a
/// multiple of 32) against `cols` outputs of `w` from its block `first`, over `depth` inputs
/// from its step `step`. Panics unless [`bf16_available`] and the packing holds those tiles.
pub(crate) fn gemm_bf16_part(a: &[u16], rows: usize, depth: usize, w: &Part, out: &mut [f32], cols: usize, accumulate: bool) {
    assert!(bf16_available(), "AMX-BF16");
    assert!(depth.is_multiple_of(TILE_DEPTH / 2) && w.first.is_multiple_of(2), "whole tiles, an even first block");
    assert!(a.len() >= rows_read(rows) * depth && out.len() == rows * cols, "activation and output sizes");
    let vectors = cols.div_ceil(VEC);
    let steps = w.block / (2 * VEC);
    assert!(w.step + depth / 2 <= steps && (w.first + vectors.next_multiple_of(2)) * w.block <= w.data.len(), "tiles inside the packing");
    if rows == 0 || cols == 0 {
        return;
    }
    let weights = Weights {
        // SAFETY: inside `data` (asserted above: the first block's step `step`).
        data: Shared(unsafe { w.data.as_ptr().add(w.first * w.block + w.step * 2 * VEC) }.cast_mut().cast()),
        block: 2 * w.block,
        ktiles: 2 * depth / TILE_DEPTH,
        vectors,
    };
    let o = Shared(out.as_mut_ptr());
    // SAFETY: the activations hold `rows_read(rows)` rows of `depth` bf16 (2·depth bytes); the
    // weight tiles lie inside the packing and the vectors are an even count from its even
    // first block (asserted); the tile state is granted (`bf16_available`). Each tile's own
    // rows and vector of `out` (`rows × cols`) are written, by this thread alone.
    unsafe {
        panel::<true>(a.as_ptr().cast(), 2 * depth, 0..rows, weights, 0..vectors.next_multiple_of(2), &|tile, rs, v| {
            store_f32(tile, rs, v, cols, o.ptr(), None, accumulate)
        })
    }
}

/// Where a kernel's weight tiles are: block `v` of 16 outputs at `data + v·block` bytes, its
/// `ktiles` tiles of 16 rows × 64 bytes one after the other; `vectors` blocks hold outputs (the
/// packing has an even count). The tasks only read them.
#[derive(Clone, Copy)]
struct Weights {
    data: Shared<u8>,
    block: usize,
    ktiles: usize,
    vectors: usize,
}

/// The sums of one 16 × 16 tile (i32 for int8, f32 bits for bf16), its rows (a part of a tile
/// at the end) and its vector of 16 outputs.
type Store<'a> = dyn Fn(&[u32], Range<usize>, usize) + Sync + 'a;

/// Tasks of row blocks × panels, each running [`panel`].
fn run<const BF16: bool>(a: *const u8, lda: usize, rows: usize, w: Weights, store: &Store) {
    if rows == 0 {
        return;
    }
    let vectors = w.vectors.next_multiple_of(2);
    let width = if rows > FEW_ROWS { PANEL } else { SMALL_PANEL };
    let panels = vectors.div_ceil(width);
    let blocks = rows.div_ceil(BLOCK);
    // The tasks only read the activations.
    let a = Shared(a.cast_mut());
    (0..blocks * panels).into_par_iter().for_each(|t| {
        let (b, p) = (t / panels, t % panels);
        let rs = b * BLOCK..rows.min((b + 1) * BLOCK);
        // SAFETY: the callers checked the activations (rows rounded up to 32, `lda` bytes
        // each), the weights (an even count of blocks of `ktiles` tiles) and the AMX state.
        unsafe { panel::<BF16>(a.ptr(), lda, rs, w, p * width..vectors.min((p + 1) * width), store) }
    });
}

/// Rows `rows` (from a multiple of 32) against the vectors `vs` (an even count from an even
/// start), 2 × 2 tiles at a time, each tile's sums handed to `store`.
///
/// # Safety
/// The tile state is granted and the CPU has the kernel's AMX; `a` holds rows `rows.start..`
/// rounded up to 32, `lda` bytes apart, each `w.ktiles` tiles of 64 bytes deep; `vs` are
/// blocks of the (even) packing `w` describes.
unsafe fn panel<const BF16: bool>(a: *const u8, lda: usize, rows: Range<usize>, w: Weights, vs: Range<usize>, store: &Store) {
    // Four 16 × 16 tiles of sums, stored for the epilogue.
    let mut sums = [0u32; 4 * TILE_ROWS * VEC];
    configure();
    // Few rows make few products per weight tile, and the tiles wait on each load (tile
    // registers are not renamed): the weights' memory latency set the pace. One tile-row of
    // rows reads each weight tile once, so its two streams are fetched AHEAD tiles on (into
    // the next pair of blocks, contiguous, past the end of these).
    let stream = rows.len() <= 2 * TILE_ROWS;
    let limit = w.vectors.next_multiple_of(2);
    let mut r0 = rows.start;
    while r0 < rows.end {
        let mut v = vs.start;
        while v < vs.end {
            // SAFETY: rows r0..r0 + 32 of `a` exist (rounded up to 32), `lda` bytes apart; the
            // weight tiles are 16 rows of 64 bytes inside blocks v and v + 1; `sums` holds four
            // 1 KB tiles.
            unsafe {
                let a0 = a.add(r0 * lda);
                let b0 = w.data.ptr().add(v * w.block);
                asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
                for k in 0..w.ktiles {
                    if stream {
                        let (t, pair) = if k + AHEAD < w.ktiles { (k + AHEAD, v) } else { (k + AHEAD - w.ktiles, v + 2) };
                        if pair < limit {
                            for j in 0..2 {
                                let tile = w.data.ptr().cast_const().wrapping_add((pair + j) * w.block + t * TILE_ROWS * TILE_DEPTH);
                                for l in 0..TILE_ROWS {
                                    _mm_prefetch::<_MM_HINT_T1>(tile.wrapping_add(l * 64).cast());
                                }
                            }
                        }
                    }
                    let ak = a0.add(k * TILE_DEPTH);
                    let bk = b0.add(k * TILE_ROWS * TILE_DEPTH);
                    macro_rules! step {
                        ($op:literal) => {
                            asm!(
                                "tileloadd tmm4, [{a} + {lda} * 1]",
                                "tileloadd tmm5, [{a2} + {lda} * 1]",
                                "tileloadd tmm6, [{b} + {ldb} * 1]",
                                "tileloadd tmm7, [{b2} + {ldb} * 1]",
                                concat!($op, " tmm0, tmm4, tmm6"),
                                concat!($op, " tmm1, tmm4, tmm7"),
                                concat!($op, " tmm2, tmm5, tmm6"),
                                concat!($op, " tmm3, tmm5, tmm7"),
                                a = in(reg) ak,
                                a2 = in(reg) ak.add(TILE_ROWS * lda),
                                lda = in(reg) lda,
                                b = in(reg) bk,
                                b2 = in(reg) bk.add(w.block),
                                ldb = in(reg) TILE_DEPTH,
                                options(nostack, readonly),
                            )
                        };
                    }
                    if BF16 {
                        step!("tdpbf16ps");
                    } else {
                        step!("tdpbusd");
                    }
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
                if first < last && v + j < w.vectors {
                    store(tile, first..last, v + j);
                }
            }
            v += 2;
        }
        r0 += 2 * TILE_ROWS;
    }
}

/// Loads the one tile configuration on this thread, once: every kernel here uses it, and a
/// `ldtilecfg` per task (with a `tilerelease` after it) cost as much as ~10% of a task's work.
/// Sound because the threads that run these kernels are our own pool's (`pool.install`), on
/// which no other code configures the tiles; the kept tile state makes their context switches
/// save 8 KB more.
fn configure() {
    thread_local! {
        static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    DONE.with(|done| {
        if !done.get() {
            let cfg = Config::new();
            // SAFETY: the configuration is a valid palette-1 layout (8 tiles of 16 × 64 bytes).
            unsafe { asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly)) };
            done.set(true);
        }
    });
}

/// The int8 epilogue of one tile: `vnni.rs`'s, row by row (so both kernels give the same bits).
///
/// # Safety
/// The CPU has AVX-512 F/BW; rows `rows` and vector `v` (holding outputs) are the tile's own
/// part of `out`, a live `(.., w.outputs())` matrix; `tile` holds its 16 rows of 16 sums.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn store_int8(tile: &[u32], rows: Range<usize>, v: usize, w: &PackedW, out: *mut f32, e: &Epilogue) {
    let c0 = v * VEC;
    // SAFETY: vector v holds outputs (the contract above), so c0 < w.outputs().
    let cols = unsafe { super::vnni::Columns::new(c0, w, e) };
    for (i, r) in rows.enumerate() {
        // SAFETY: row i of the tile's sums; row r's outputs from c0 (the contract above).
        unsafe {
            let acc = _mm512_loadu_si512(tile.as_ptr().add(i * VEC) as *const _);
            super::vnni::store(acc, r, &cols, out.add(r * w.outputs() + c0), e);
        }
    }
}

/// The f32 epilogue of one bf16 tile: `half_gemm.rs`'s (bias, then the residual).
///
/// # Safety
/// The CPU has AVX-512 F/BW; rows `rows` and vector `v` (holding outputs) are the tile's own
/// part of `out`, a live `(.., outputs)` matrix; `tile` holds its 16 rows of 16 sums; `bias`
/// holds `outputs` values.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn store_f32(tile: &[u32], rows: Range<usize>, v: usize, outputs: usize, out: *mut f32, bias: Option<&[f32]>, accumulate: bool) {
    let c0 = v * VEC;
    let mask: __mmask16 = if outputs - c0 >= VEC { 0xffff } else { (1u16 << (outputs - c0)) - 1 };
    // SAFETY: masked loads of the bias; the stores write row r's masked columns c0.. of `out`.
    unsafe {
        for (i, r) in rows.enumerate() {
            let mut y = _mm512_castsi512_ps(_mm512_loadu_si512(tile.as_ptr().add(i * VEC) as *const _));
            if let Some(bias) = bias {
                y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask, bias.as_ptr().add(c0)));
            }
            let o = out.add(r * outputs + c0);
            if accumulate {
                y = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, o), y);
            }
            _mm512_mask_storeu_ps(o, mask, y);
        }
    }
}
