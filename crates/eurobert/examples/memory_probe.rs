//! Read bandwidth of this machine, GB/s, by buffer size and thread count: what one short input
//! costs is mostly reading the weights once (bert-base f32 340 MB, q8 85 MB; the compact model's
//! f32 12.6 MB), so its floor is their bytes over the figure for their size.
//! `cargo run --release -p eurobert --example memory_probe -- [MB,MB,...]`; best of 5 passes
//! (each pass reads the whole buffer; small buffers are read many times per pass).
use std::time::Instant;

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .nth(1)
        .map(|s| s.split(',').filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 3, 12, 32, 85, 340]);
    for mb in sizes {
        let words = mb << 17; // u64 per MB: 2^20 / 8
        let buf: Vec<u64> = (0..words as u64).collect();
        for threads in [1usize, 2] {
            // At least ~1 GB per pass, so thread start-up stays out of the figure.
            let reps = (1024 / mb).max(1);
            let mut best = 0f64;
            for _ in 0..5 {
                let t = Instant::now();
                let sum: u64 = std::thread::scope(|s| {
                    let handles: Vec<_> = buf
                        .chunks(words.div_ceil(threads))
                        .map(|part| {
                            s.spawn(move || {
                                let mut acc = 0u64;
                                for _ in 0..reps {
                                    // Eight lanes of sums the compiler keeps in vector registers.
                                    let mut lanes = [0u64; 8];
                                    for c in part.chunks_exact(8) {
                                        for (l, v) in lanes.iter_mut().zip(c) {
                                            *l = l.wrapping_add(*v);
                                        }
                                    }
                                    acc = acc.wrapping_add(lanes.iter().fold(0, |a, &l| a.wrapping_add(l)));
                                }
                                acc
                            })
                        })
                        .collect();
                    handles.into_iter().map(|h| h.join().expect("probe thread")).fold(0, u64::wrapping_add)
                });
                std::hint::black_box(sum);
                best = best.max((8 * words * reps) as f64 / t.elapsed().as_secs_f64() / 1e9);
            }
            println!("{mb:5} MB  {threads} thread{}  {best:6.1} GB/s", if threads == 1 { " " } else { "s" });
        }
    }
}
